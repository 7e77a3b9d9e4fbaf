"""Benchmark: what a researcher waits for in the page's slow views (SmolLM2-135M, CPU).

1. Patching (section 9): attribution patching of every head (the page's first answer) vs
   exact activation patching of every head (what the page ran before), and exact patching of
   the top 10 heads (one click of "Exact"), on the page's IOI prompt pair; the agreement of
   the estimate with the exact effects (Spearman over all heads, top-10 overlap).
2. The long-document view (section 12): ``interp.show.long_document`` through layer 15 at
   1,024 / 4,096 / 8,192 tokens of the bundled haystack text, beside transformer-lens'
   ``run_with_cache`` of that one layer's pattern and the same statistics from it (the peer),
   each in its own subprocess for its peak memory.

Prints a table and writes benchmarks/results/page_views.json.

Usage: .venv/bin/python benchmarks/page_views.py [--ns 1024 4096 8192] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from interp.report import write_json

RESULTS = Path(__file__).parent / "results"
PROMPT = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"
LAYER = 15


def _document(model, n: int) -> list[int]:
    text = (Path(__file__).parents[1] / "interp" / "data" / "haystack.txt").read_text()
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def long_case(kind: str, n: int) -> dict:
    """One long-document case in this process: seconds and peak RSS."""
    import torch

    import interp
    from interp.show import long_document
    from interp.stats import dense

    model = interp.load_model("smollm2-135m")
    ids = _document(model, n)
    t0 = time.perf_counter()
    if kind == "long_document":
        doc = long_document(model, ids, LAYER)
        stats = doc.values("received")
    else:  # the peer: cache the layer's pattern, then the same statistics densely
        name = f"blocks.{LAYER}.attn.hook_pattern"
        with torch.no_grad():
            _, cache = model.run_with_cache(
                torch.tensor([ids]), names_filter=lambda x: x == name, stop_at_layer=LAYER + 1
            )
        a = cache[name].float()
        stats = dense.sink_scores(a, [n])[0].numpy()
        _ = -(a * a.clamp_min(1e-30).log()).sum(-1)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    return {"kind": kind, "n": n, "seconds": seconds, "peak_rss_gib": rss,
            "received_mean": float(stats.mean())}  # fmt: skip


def patching_cases() -> dict:
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    import interp
    from dashboards.prompt_analysis import exact_patching, patching_view
    from interp.ablation.patching import activation_patching
    from interp.tokens import tokenize

    model = interp.load_model("smollm2-135m")
    t0 = time.perf_counter()
    view = patching_view(model, PROMPT, CORRUPTED, None, None)
    attribution = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_patching(model, view, 10)
    top10 = time.perf_counter() - t0
    clean, dirty = tokenize(model, [PROMPT]), tokenize(model, [CORRUPTED])
    t, f = view.target, view.foil
    t0 = time.perf_counter()
    with torch.no_grad():
        full = activation_patching(
            model, clean, dirty, lambda o: float(o[0, -1, t] - o[0, -1, f]), progress=False
        ).numpy()
    every = time.perf_counter() - t0
    rho = float(spearmanr(view.estimate.ravel(), full.ravel()).statistic)
    best = set(np.argsort(-np.abs(full), axis=None)[:10].tolist())
    chosen = set(np.argsort(-np.abs(view.estimate), axis=None)[:10].tolist())
    checked = ~np.isnan(view.exact)
    return {
        "attribution_s": attribution, "exact_top10_s": top10, "exact_all_s": every,
        "heads": int(full.size), "spearman_estimate_vs_exact": rho,
        "top10_overlap": len(best & chosen),
        "exact_equal": bool(np.allclose(view.exact[checked], full[checked], atol=1e-4)),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns", type=int, nargs="+", default=[1024, 4096, 8192])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: kind n
    p.add_argument("--patching", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(long_case(args.case[0], int(args.case[1]))))
        return
    if args.patching:
        print(json.dumps(patching_cases()))
        return

    def sub(*extra: str) -> dict:
        cmd = [sys.executable, __file__, "--threads", str(args.threads), *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    patching = sub("--patching")
    longs = [sub("--case", kind, str(n)) for n in args.ns for kind in ("long_document", "tl")]
    print("\npatching (SmolLM2-135M, IOI pair, 270 heads)")
    print(f"  attribution, every head   {patching['attribution_s']:7.1f} s")
    print(f"  exact, top 10 heads       {patching['exact_top10_s']:7.1f} s")
    print(f"  exact, every head (before){patching['exact_all_s']:7.1f} s")
    print(f"  Spearman estimate vs exact {patching['spearman_estimate_vs_exact']:.2f}; "
          f"top-10 overlap {patching['top10_overlap']}/10; exact equal: "
          f"{patching['exact_equal']}")  # fmt: skip
    print(f"\nlong document through layer {LAYER}: seconds / peak RSS GiB")
    print(f"{'n':>6} {'long_document':>18} {'run_with_cache+stats':>22} {'speedup':>8}")
    for n in args.ns:
        a = next(r for r in longs if r["n"] == n and r["kind"] == "long_document")
        b = next(r for r in longs if r["n"] == n and r["kind"] == "tl")
        print(f"{n:>6} {a['seconds']:8.1f} / {a['peak_rss_gib']:5.2f} "
              f"{b['seconds']:11.1f} / {b['peak_rss_gib']:5.2f} "
              f"{b['seconds'] / a['seconds']:7.2f}x")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "page_views.json"
    write_json({"threads": args.threads, "patching": patching, "long": longs}, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
