"""Benchmark: the retrieval detector's needle grid, one test at a time vs shared prefixes +
batched decoding (interp.generate_batched), on SmolLM2-135M-Instruct, in one run.

Both paths run the default grid (256, 512, 1024 tokens x 5 depths x 3 needles = 45 tests);
the script checks that the answers and the per-test score matrices are identical, and times
the whole retrieval detector (``interp scan``'s needle part) with the batched path. Prints a
table and writes benchmarks/results/needle_grid_smollm2-135m.json.

Usage: .venv/bin/python benchmarks/needle_grid.py [--quick]   (--quick: 256 tokens only)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import interp
from interp.heads import get_detector
from interp.heads.retrieval import make_tests, run_test, run_tests
from interp.report import write_json

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    model = interp.load_model("smollm2-135m")
    tests = make_tests(model, lengths=[256] if args.quick else None)
    t0 = time.perf_counter()
    one = [run_test(model, t) for t in tests]
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = run_tests(model, tests)
    t_batched = time.perf_counter() - t0
    same = [
        a.response == b.response and np.array_equal(a.scores, b.scores)
        for a, b in zip(one, batched, strict=True)
    ]
    t0 = time.perf_counter()
    get_detector("retrieval").run(model, lengths=[256] if args.quick else None, progress=False)
    t_detector = time.perf_counter() - t0
    prompt_tokens = sum(len(t.ids) - 1 for t in tests)
    distinct = len({tuple(t.ids[: i + 1]) for t in tests for i in range(len(t.ids) - 1)})
    rows = [
        {"path": "one test at a time (before)", "seconds": t_one},
        {"path": "shared prefixes + batched decoding", "seconds": t_batched},
        {"path": "retrieval detector, batched (scan's needle part)", "seconds": t_detector},
    ]
    out = {
        "meta": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "tests": len(tests),
        },  # fmt: skip
        "rows": rows,
        "speedup": t_one / t_batched,
        "identical_tests": int(sum(same)),
        "prompt_tokens": prompt_tokens,
        "distinct_prefix_tokens": distinct,
        "generated_tokens": int(sum(o.n_generated for o in batched)),
    }
    print(f"{len(tests)} needle tests, {prompt_tokens} prompt tokens, {distinct} distinct")
    for r in rows:
        print(f"  {r['path']:50s} {r['seconds']:7.1f} s")
    print(f"  speed-up {out['speedup']:.2f}x; identical tests: {sum(same)}/{len(same)}")
    name = "needle_grid_smollm2-135m_quick.json" if args.quick else "needle_grid_smollm2-135m.json"
    write_json(out, RESULTS / name)
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
