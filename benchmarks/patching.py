"""Benchmark: exhaustive head patching (``interp circuit``'s reference), the bridge path
(every head from the tokens, full logits) vs the resumed path (from the patched layer's cached
input, a layer's heads in one batched forward, logits at the last token), in one run.

SmolLM2-135M-Instruct, the circuit tasks' prompts (``circuits.tasks``, 20 pairs each, as
``interp circuit``), every one of the 270 heads, hook ``z``, noising. Checks that the two
give the same effects (largest absolute difference), prints a table and writes
benchmarks/results/patching_smollm2-135m.json.

Usage: .venv/bin/python benchmarks/patching.py [--tasks ioi ...] [--n 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import interp
from circuits.tasks import make_task
from interp.ablation.patching import activation_patching
from interp.report import write_json

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=["ioi", "greater_than"])
    ap.add_argument("--n", type=int, default=20)  # interp circuit's default
    args = ap.parse_args()
    model = interp.load_model("smollm2-135m")
    rows = []
    for name in args.tasks:
        task = make_task(model, name, n=args.n)
        common = dict(hook="z", progress=False)
        t0 = time.perf_counter()
        slow = activation_patching(model, task.clean, task.corrupted, task.logit_diff,
                                   fast=False, **common)  # fmt: skip
        t_slow = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = activation_patching(model, task.clean, task.corrupted, task.logit_diff,
                                   metric_reads_last_token=True, **common)  # fmt: skip
        t_fast = time.perf_counter() - t0
        diff = float((fast - slow).abs().nan_to_num().max())
        rows.append({"task": name, "prompts": len(task.answer),
                     "tokens": int(task.clean.tokens.shape[1]), "bridge_s": t_slow,
                     "resumed_s": t_fast, "speedup": t_slow / t_fast,
                     "max_abs_diff": diff,
                     "max_abs_effect": float(slow.abs().nan_to_num().max())})  # fmt: skip
        r = rows[-1]
        print(f"{name:14s} {r['prompts']} prompts x {r['tokens']} tokens: bridge {t_slow:6.1f} s, "
              f"resumed {t_fast:6.1f} s ({r['speedup']:.2f}x), max |diff| {diff:.1e}")  # fmt: skip
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    out = RESULTS / "patching_smollm2-135m.json"
    write_json({"meta": meta, "rows": rows}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
