"""Sweep throughput: in-process vs Ray with N workers, same sweep, same machine, same run.

    python benchmarks/sweep_throughput.py                    # SmolLM2-135M, 2 Ray workers
    python benchmarks/sweep_throughput.py --model tiny --windows 8

Each engine computes the whole sweep into a fresh folder (no reuse). Reported per engine:
wall time including model loading (and, for Ray, starting the local cluster and its workers),
prompts per second over that wall time, and the ratio to the in-process baseline. The tables of
both engines are compared (max abs difference; bit-identical when the thread counts match).
Prints a table and writes ``benchmarks/results/sweep_throughput_<model>.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

ROOT = Path(__file__).resolve().parents[1]


def config(model: str, windows: int, lengths: list[int]):
    from interp.sweep import parse_config

    return parse_config(
        {
            "name": "throughput",
            "models": [model],
            "prompts": [{"name": "scan", "builtin": "scan"}, {"name": "text", "haystack": windows}],
            "context_lengths": lengths,
            "shard_size": 2,
        }
    )


def main(
    model: str = "smollm2-135m",
    windows: Annotated[int, typer.Option(help="haystack windows per length")] = 4,
    lengths: Annotated[str, typer.Option(help="context lengths")] = "128,512",
    workers: int = 2,
    out: Annotated[Path | None, typer.Option(help="JSON path")] = None,
) -> None:
    import interp  # noqa: F401  (offline mode, interpreter set-up)
    from interp.sweep import run_sweep

    cfg = config(model, windows, [int(x) for x in lengths.split(",")])
    tmp = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    results = {}
    try:
        for engine in ("local", "ray"):
            t0 = time.perf_counter()
            r = run_sweep(cfg, tmp / engine, engine=engine, workers=workers, progress=False)
            wall = time.perf_counter() - t0
            results[engine] = {
                "wall_s": round(wall, 2),
                "compute_s": round(r.seconds, 2),
                "prompts": r.prompts_computed,
                "shards": r.computed,
                "failed": len(r.failed),
                "prompts_per_s": round(r.prompts_computed / wall, 3),
                "tables": r.tables,
            }
        diff = max(
            float(np.nanmax(np.abs(
                results["local"]["tables"][k].select_dtypes("number").to_numpy(float)
                - results["ray"]["tables"][k].select_dtypes("number").to_numpy(float)
            )))
            for k in results["local"]["tables"]
        )  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results["local"]["prompts_per_s"]
    print(f"\nsweep throughput, {model}, {results['local']['prompts']} prompts, "
          f"{os.cpu_count()} CPU cores")  # fmt: skip
    print(f"{'engine':<22} {'wall s':>8} {'prompts/s':>10} {'vs in-process':>14}")
    for engine, r in results.items():
        name = "in-process" if engine == "local" else f"ray, {workers} workers"
        print(f"{name:<22} {r['wall_s']:>8.1f} {r['prompts_per_s']:>10.3f} "
              f"{r['prompts_per_s'] / base:>13.2f}x")  # fmt: skip
    print(f"max abs difference between the engines' tables: {diff:.2e}")
    record = {
        "model": model,
        "config": cfg.to_dict(),
        "machine": f"{os.cpu_count()} CPU cores",
        "workers": workers,
        "engines": {
            k: {kk: vv for kk, vv in v.items() if kk != "tables"} for k, v in results.items()
        },
        "ray_vs_in_process": round(results["ray"]["prompts_per_s"] / base, 3),
        "max_abs_table_difference": diff,
    }
    path = out or ROOT / "benchmarks" / "results" / f"sweep_throughput_{Path(model).name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
