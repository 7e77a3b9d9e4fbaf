"""Triton kernels vs the torch backend on a CUDA GPU, every tuned config (run before the speed
benchmark).

    python benchmarks/triton_exactness.py [--jobs 12]     # exits 1 on any mismatch

Needs only torch + triton + numpy (the light core). Cases: SmolLM2's shape (9 query / 3 kv heads, d
64) and 32 / 8 heads at d 128, plus d 24 (padded) and bidirectional; causal and not; with and
without padding (left and right); fp32, bf16 and fp16 inputs (the reference sees the same rounded
inputs in fp32). Each (case, dtype) runs once per autotune config of each pass (the autotuner is
pinned to that config), for the two-pass kernels and for the one-pass kernel given the row LSE
(``attention_stats(..., lse=)``, atomic and deterministic column sums), so a config the autotuner
might pick on some GPU is checked too; worker processes compile in parallel. Tolerances: fp32 1e-4
relative to each statistic's scale; bf16/fp16 2e-2 (the MMA rounds q.k products differently from an
fp32 matmul); argmax must agree on every row in fp32 and on 99 % of rows in bf16/fp16 (near-ties).
Writes benchmarks/results/triton_exactness_<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

FIELDS = ("lse", "entropy", "expected_position", "mean_distance", "waad", "sink_mass",
          "col_sum", "fai_sum")  # fmt: skip
CASES = [  # (batch, q heads, kv heads, n, d, causal, padded)
    (1, 9, 3, 1000, 64, True, False),
    (2, 9, 3, 777, 64, True, True),
    (1, 9, 3, 2048, 64, True, False),
    (1, 32, 8, 2048, 128, True, False),
    (2, 4, 4, 513, 24, False, True),
    (1, 8, 2, 4096, 128, True, False),
]
DTYPES = ("float32", "bfloat16", "float16")
DEVICE = "cuda"  # tests/test_benchmark_smoke.py runs one job in the CPU interpreter


def _jobs() -> list[tuple]:
    import torch

    from interp.kernels.attention_stats import gpu_configs, padded_head_dim

    jobs = []
    for case in CASES:
        d = padded_head_dim(case[4])
        for dtype in DTYPES:
            size = getattr(torch, dtype).itemsize
            rows, cols = gpu_configs("row", d, size), gpu_configs("col", d, size)
            for i in range(max(len(rows), len(cols))):  # TRIM alternates (argmax strategy)
                row = (*rows[i % len(rows)], bool(i % 2))
                jobs.append((case, dtype, row, cols[i % len(cols)]))
    return jobs


def _pin(autotuner, cfg: tuple) -> None:
    """Leave ``autotuner`` exactly one config, (BLOCK_M, BLOCK_N, warps, stages[, TRIM])."""
    if not hasattr(autotuner, "all_configs"):
        autotuner.all_configs = list(autotuner.configs)

    def key(c):
        k = (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages)
        return k if len(cfg) == 4 else (*k, c.kwargs.get("TRIM"))

    autotuner.configs = [c for c in autotuner.all_configs if key(c) == tuple(cfg)]
    autotuner.cache = {}
    from interp.kernels.attention_stats import _CHOSEN

    _CHOSEN.clear()  # the launcher's remembered choices: the pinned config must run
    assert len(autotuner.configs) == 1, cfg


def _check(job: tuple) -> dict:
    import torch

    from interp.kernels import attention_stats as kernels
    from interp.kernels import fused_stats
    from interp.stats.streaming import attention_stats

    (b, hq, hkv, n, d, causal, padded), dtype, row_cfg, col_cfg = job
    _pin(kernels._row_stats, row_cfg)
    _pin(kernels._col_stats, col_cfg)
    _pin(fused_stats._fused_stats, row_cfg)  # the one-pass kernel tunes over pass 1's configs
    dev = torch.device(DEVICE)
    g = torch.Generator(device=dev).manual_seed(n + hq + d)
    q = (torch.randn(b, hq, n, d, device=dev, generator=g) * 2).to(getattr(torch, dtype))
    k = torch.randn(b, hkv, n, d, device=dev, generator=g).to(getattr(torch, dtype))
    mask = torch.ones(b, n, dtype=torch.bool, device=dev)
    if padded:
        mask[-1, n - n // 3 :] = False
        mask[0, : n // 10] = False
    kw = dict(causal=causal, key_mask=mask, sink_tokens=4, fai_window=(10, 100))
    ref = attention_stats(q.float(), k.float(), backend="torch", **kw)
    t0 = time.perf_counter()
    try:
        got = attention_stats(q, k, backend="triton", **kw)
        if q.is_cuda:
            torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - a kernel that fails to compile or run is a result
        return {"job": job, "ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    seconds = time.perf_counter() - t0
    fp32 = dtype == "float32"
    result = {"job": job, "first_call_s": seconds}
    variants = {"": got}
    try:
        for det in (False, True):
            variants["fused_det_" if det else "fused_"] = attention_stats(
                q, k, backend="triton", lse=ref.lse, deterministic=det, check_lse=False, **kw
            )
    except Exception as e:  # noqa: BLE001
        return {"job": job, "ok": False, "error": f"fused: {type(e).__name__}: {e}"[:300]}
    ok = True
    for prefix, st in variants.items():
        worst = {}
        for f in FIELDS:
            a, r = getattr(st, f), getattr(ref, f)
            if not torch.isfinite(a).all():
                worst[f] = float("inf")
                continue
            worst[f] = float(((a - r).abs() / r.abs().amax().clamp_min(1.0)).max())
        agree = float((st.argmax == ref.argmax).float().mean())
        ok &= max(worst.values()) <= (1e-4 if fp32 else 2e-2) and agree >= (1.0 if fp32 else 0.99)
        result[f"{prefix}max_rel_err"], result[f"{prefix}argmax_agreement"] = worst, agree
    result["ok"] = ok
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=12, help="worker processes (compile in parallel)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run the interpreter tests instead (pytest tests/stats)")
    import interp  # noqa: F401  (decides the Triton mode before triton loads)

    jobs = _jobs()
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = []
        for row in pool.imap_unordered(_check, jobs):
            rows.append(row)
            (b, hq, hkv, n, d, causal, padded), dtype, rc, cc = row["job"]
            what = f"{b}x{hq}/{hkv} n{n} d{d} {'causal' if causal else 'bidir'}"
            what += f"{' pad' if padded else ''} {dtype} row{rc} col{cc}"
            if "error" in row:
                print(f"BAD {what}: {row['error']}", flush=True)
                continue
            field = max(row["max_rel_err"], key=row["max_rel_err"].get)
            print(f"{'ok ' if row['ok'] else 'BAD'} {what}: worst {field} "
                  f"{row['max_rel_err'][field]:.1e}, argmax {row['argmax_agreement']:.4f}",
                  flush=True)  # fmt: skip
    bad = sum(not r["ok"] for r in rows)
    name = torch.cuda.get_device_name(0)
    slug = "".join(c if c.isalnum() else "_" for c in name)
    out = Path(__file__).parent / "results" / f"triton_exactness_{slug}.json"
    meta = {"gpu": name, "torch": torch.__version__, "triton": _triton_version()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"{bad} bad of {len(rows)} in {time.perf_counter() - t0:.0f} s; wrote {out}")
    sys.exit(1 if bad else 0)


def _triton_version() -> str:
    import triton

    return triton.__version__


if __name__ == "__main__":
    main()
