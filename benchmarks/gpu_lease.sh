#!/usr/bin/env bash
# One lease on a lent GPU (the device tool runs this from the repository root; $OUT comes back):
# exactness of every tuned config of the Triton kernels, then the per-layer speed table.
# Needs only torch + triton + numpy there. Usage: OUT=/some/dir bash benchmarks/gpu_lease.sh
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TRITON_INTERPRET=0
OUT=${OUT:-/tmp/gpu_lease}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c "import interp.kernels as k; print('interpreter:', k.use_interpreter())"
} 2>&1 | tee "$OUT/gpu.txt"
timeout "${EXACT_S:-240}" python3 benchmarks/triton_exactness.py --jobs 12 2>&1 \
  | tee "$OUT/exactness.log" | grep -v '^ok '
tail -1 "$OUT/exactness.log"
TRITON_PRINT_AUTOTUNING=1 timeout "${BENCH_S:-300}" python3 benchmarks/attention_stats.py \
  --ns ${NS:-2048 8192 32768 131072} >"$OUT/bench.log" 2>&1
grep -v -i "autotun\|^ *$" "$OUT/bench.log" | tail -45
cp benchmarks/results/triton_exactness_*.json benchmarks/results/attention_stats_*.json "$OUT/" \
  2>/dev/null
rm -f "$OUT/attention_stats_cpu.json"
ls "$OUT"
