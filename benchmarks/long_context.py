"""Long-context sweeps and retrieval prefill: dense patterns (before) vs streaming (after).

    python benchmarks/long_context.py                       # SmolLM2-135M, n = 512 2048 8192
    python benchmarks/long_context.py --ns 512 2048 --dense-max 2048

Cases, each in its own subprocess so its peak memory (ru_maxrss) is its own:
- ``sweep_dense``: the per-prompt sweep measures (head_stats, sink, previous/duplicate-token,
  induction) computed the way ``interp sweep`` did before: every layer's [head, n, n] pattern from
  ``run_with_cache`` (a few layers per forward under a 2 GB budget), then the pattern oracles
  ``interp.stats.dense.head_summary`` / ``sink_scores`` and ``classic.pattern_scores``;
- ``sweep_stream``: ``ShardRunner.measures`` (one forward, streaming statistics and exact
  sparse pattern entries; the sweep's code path now);
- ``retrieval_bridge`` / ``retrieval_plain``: one needle test (``run_test``) with the prompt
  prefilled by the bridge (eager patterns; forced by a no-op hook) or by the plain SDPA model.
The two sweep paths are compared (max abs difference over every measure).
Prints a table and writes ``benchmarks/results/long_context_<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from interp.hook_names import act_name

RESULTS = Path(__file__).parent / "results"
GB = 2**30
MEASURES = ("entropy", "first_token_mass", "prev_token_mass", "mean_distance", "sink_score_0")
PATTERN_BUDGET = 2 << 30  # the former sweep's bound on patterns held at once


def _dense_measures(model, ids: list[int]) -> dict:
    """The former sweep code path (patterns, then the dense oracles)."""
    import torch

    from interp.heads.classic import (
        duplicate_token_pattern,
        induction_pattern,
        pattern_scores,
        previous_token_pattern,
    )
    from interp.stats.dense import head_summary, sink_scores

    n_layers, n_heads, n = int(model.cfg.n_layers), int(model.cfg.n_heads), len(ids)
    chunk = max(1, min(n_layers, PATTERN_BUDGET // (n_heads * n * n * 4)))
    tokens = torch.tensor([ids])
    out: dict[str, list] = {}
    for first in range(0, n_layers, chunk):
        layers = range(first, min(n_layers, first + chunk))
        names = {act_name("pattern", la) for la in layers}
        with torch.no_grad():
            _, cache = model.run_with_cache(
                tokens, names_filter=lambda name, names=names: name in names,
                return_cache_object=False,
            )  # fmt: skip
        for la in layers:
            a = cache.pop(act_name("pattern", la))[:1].float()
            summ = head_summary(a, [n])
            for key in MEASURES[:4]:
                out.setdefault(key, []).append(summ[key] / summ["n_queries"])
            out.setdefault("sink_score_0", []).append(summ["sink_score_0"])
            s = sink_scores(a, [n])[0]
            # the detectors' per-prompt scores, under the sweep's "<detector>.<column>" keys
            out.setdefault("sink.score", []).append(summ["sink_score_0"])
            out.setdefault("sink.hidden_sinks", []).append((s[:, 1:] > 0.1).sum(-1).float())
            for name, fn in (
                ("previous_token", previous_token_pattern),
                ("duplicate_token", duplicate_token_pattern),
                ("induction", induction_pattern),
            ):
                score = pattern_scores(a[None], tokens, [n], fn)[0]
                out.setdefault(f"{name}.score", []).append(score)
            del a
    return {k: torch.stack(v) for k, v in out.items()}


def run_case(case: str, n: int, model_name: str) -> dict:
    import torch

    import interp
    from interp.inputs.needles import haystack_text

    torch.set_num_threads(os.cpu_count() or 1)
    model = interp.load_model(model_name)
    result: dict = {}
    if case.startswith("sweep"):
        from interp.sweep.shards import ShardRunner

        ids = model.tokenizer(haystack_text(), add_special_tokens=False)["input_ids"][:n]
        runner = ShardRunner.__new__(ShardRunner)  # the sweep's code path on this loaded model
        runner.model = model
        wanted = {"head_stats", "sink", "previous_token", "duplicate_token", "induction"}
        t0 = time.perf_counter()
        if case == "sweep_dense":
            got = _dense_measures(model, ids)
        else:
            got = runner.measures(ids, wanted)
        result["seconds"] = time.perf_counter() - t0
        result["measures"] = {k: v.tolist() for k, v in got.items()}
    else:
        from interp.heads.retrieval import build_test, run_test
        from interp.inputs.needles import load_needles

        # the prompt plus the 50 answer tokens must fit the context
        length = min(n, int(model.cfg.n_ctx) - 64)
        test = build_test(model, load_needles()[0], length, 50.0, 0)
        result["prompt_tokens"] = len(test.ids)
        hooks = [("blocks.0.attn.hook_pattern", lambda x, hook: x)]
        t0 = time.perf_counter()
        out = run_test(model, test, fwd_hooks=hooks if case == "retrieval_bridge" else ())
        result["seconds"] = time.perf_counter() - t0
        result["response"] = out.response
        result["scores"] = out.scores.tolist()
    result["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--ns", type=int, nargs="*", default=[512, 2048, 8192])
    ap.add_argument("--dense-max", type=int, default=2048, help="largest n for the dense cases")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # child process
        print(json.dumps(run_case(args.case, args.n, args.model)))
        return
    import numpy as np

    rows = []
    for n in args.ns:
        for case in ("sweep_dense", "sweep_stream", "retrieval_bridge", "retrieval_plain"):
            row: dict = {"case": case, "n": n}
            if case in ("sweep_dense", "retrieval_bridge") and n > args.dense_max:
                row["skipped"] = f"n > --dense-max {args.dense_max}"
            else:
                cmd = [sys.executable, __file__, "--case", case, "--n", str(n)]
                p = subprocess.run(cmd + ["--model", args.model], capture_output=True, text=True)
                if p.returncode:
                    row["skipped"] = "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
                else:
                    row.update(json.loads(p.stdout.strip().splitlines()[-1]))
            rows.append(row)
            shown = row.get("skipped") or f"{row['seconds']:.1f} s, {row['peak_gb']:.2f} GB"
            print(f"{case:18s} n={n:<6d} {shown}", flush=True)
    for n in args.ns:
        by = {r["case"]: r for r in rows if r["n"] == n and "skipped" not in r}
        if "sweep_dense" in by and "sweep_stream" in by:
            a, b = by["sweep_dense"]["measures"], by["sweep_stream"]["measures"]
            diff = max(float(np.nanmax(np.abs(np.array(a[k]) - np.array(b[k])))) for k in a)
            by["sweep_stream"]["max_abs_diff_vs_dense"] = diff
            by["sweep_stream"]["x_faster"] = (
                by["sweep_dense"]["seconds"] / by["sweep_stream"]["seconds"]
            )
        if "retrieval_bridge" in by and "retrieval_plain" in by:
            same = by["retrieval_bridge"]["scores"] == by["retrieval_plain"]["scores"]
            by["retrieval_plain"]["scores_identical"] = same
            by["retrieval_plain"]["x_faster"] = (
                by["retrieval_bridge"]["seconds"] / by["retrieval_plain"]["seconds"]
            )
    print(f"\n{'case':18s} {'n':>6s} {'seconds':>9s} {'peak GB':>8s} {'x faster':>9s}  check")
    for r in rows:
        if "skipped" in r:
            print(f"{r['case']:18s} {r['n']:>6d} {r.get('skipped')}")
            continue
        check = ""
        if "max_abs_diff_vs_dense" in r:
            check = f"max |diff| vs dense {r['max_abs_diff_vs_dense']:.1e}"
        if "scores_identical" in r:
            check = f"scores identical: {r['scores_identical']}"
        fast = f"{r['x_faster']:.1f}" if "x_faster" in r else ""
        print(f"{r['case']:18s} {r['n']:>6d} {r['seconds']:>9.2f} {r['peak_gb']:>8.2f} "
              f"{fast:>9s}  {check}")  # fmt: skip
    for r in rows:  # keep the JSON small
        r.pop("measures", None)
        r.pop("scores", None)
    import platform

    import torch

    meta = {"model": args.model, "cpus": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}  # fmt: skip
    from interp.report import write_json

    out = write_json(
        {"meta": meta, "rows": rows}, RESULTS / f"long_context_{Path(args.model).name}.json"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
