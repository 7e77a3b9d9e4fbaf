"""Triton kernels vs the dense reference on a CUDA GPU (run before the speed benchmark).

    python benchmarks/triton_exactness.py      # exits 1 on any mismatch

Needs only torch + triton + numpy (the light core). Cases: SmolLM2's shape (9 query / 3 kv heads,
d 64) and 32 / 8 heads at d 128, plus d 24 (padded) and bidirectional; causal and not; with and
without padding (left and right); fp32, bf16 and fp16 inputs (the reference sees the same rounded
inputs in fp32). Tolerances: fp32 1e-4 relative to each statistic's scale; bf16/fp16 2e-2 (the
MMA rounds q.k products differently from fp32 matmul); argmax must agree wherever the top two
scores differ by more than the tolerance. Writes benchmarks/results/triton_exactness_<gpu>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from interp.stats.streaming import attention_stats

FIELDS = ("lse", "entropy", "expected_position", "mean_distance", "waad", "sink_mass",
          "col_sum", "fai_sum")  # fmt: skip
CASES = [  # (batch, q heads, kv heads, n, d, causal, padded)
    (1, 9, 3, 1000, 64, True, False),
    (2, 9, 3, 777, 64, True, True),
    (1, 32, 8, 2048, 128, True, False),
    (2, 4, 4, 513, 24, False, True),
    (1, 8, 2, 4096, 128, True, False),
]


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run the interpreter tests instead (pytest tests/stats)")
    dev = torch.device("cuda")
    rows, bad = [], 0
    for b, hq, hkv, n, d, causal, padded in CASES:
        g = torch.Generator(device=dev).manual_seed(n)
        q = torch.randn(b, hq, n, d, device=dev, generator=g) * 2
        k = torch.randn(b, hkv, n, d, device=dev, generator=g)
        mask = torch.ones(b, n, dtype=torch.bool, device=dev)
        if padded:
            mask[-1, n - n // 3 :] = False
            mask[0, : n // 10] = False
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            qd, kd = q.to(dtype), k.to(dtype)
            kw = dict(causal=causal, key_mask=mask, sink_tokens=4, fai_window=(10, 100))
            ref = attention_stats(qd.float(), kd.float(), backend="torch", **kw)
            got = attention_stats(qd, kd, backend="triton", **kw)
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            worst = {}
            for f in FIELDS:
                a, r = getattr(got, f), getattr(ref, f)
                worst[f] = float(((a - r).abs() / r.abs().amax().clamp_min(1.0)).max())
            agree = float((got.argmax == ref.argmax).float().mean())
            ok = max(worst.values()) <= tol and agree >= (1.0 if dtype == torch.float32 else 0.99)
            bad += not ok
            row = {"case": [b, hq, hkv, n, d, causal, padded], "dtype": str(dtype),
                   "max_rel_err": worst, "argmax_agreement": agree, "ok": ok}  # fmt: skip
            rows.append(row)
            field = max(worst, key=worst.get)
            print(f"{'ok ' if ok else 'BAD'} {row['case']} {dtype}: worst {field} "
                  f"{worst[field]:.1e}, argmax {agree:.4f}")  # fmt: skip
    name = torch.cuda.get_device_name(0).replace(" ", "_")
    out = Path(__file__).parent / "results" / f"triton_exactness_{name}.json"
    out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "rows": rows}, indent=2))
    print(f"{bad} bad of {len(rows)}; wrote {out}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
