"""Declarative sweeps over models, prompt sets and context lengths (``interp sweep``).

``run_sweep(load_config("sweep.yaml"), engine="local" | "ray")`` plans shards, skips those
already complete under the output folder, runs the rest (in-process, or on Ray actors that load
each model once), writes each shard atomically, then aggregates and reports. See
``interp.sweep.config`` for the file format and ``interp.sweep.store`` for the layout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from interp.errors import InputError
from interp.report import versions, write_json, write_text
from interp.runs.folder import folder_lock
from interp.sweep import store
from interp.sweep.aggregate import aggregate
from interp.sweep.config import SweepConfig, load_config, parse_config
from interp.sweep.engines import run_local, run_ray
from interp.sweep.shards import Shard, plan

ENGINES = ("local", "ray")


@dataclass
class SweepResult:
    out: Path
    n_shards: int
    reused: int
    computed: int
    failed: list[dict]
    seconds: float
    prompts_computed: int
    tables: dict[str, pd.DataFrame]

    @property
    def prompts_per_second(self) -> float:
        return self.prompts_computed / self.seconds if self.seconds else 0.0


def run_sweep(
    cfg: SweepConfig,
    out: Path | None = None,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    throttle: float = 0.0,
) -> SweepResult:
    """Run (or resume) a sweep; returns counts, timings and the per-detector tables.

    ``threads``: torch threads of the in-process engine (Ray actors use 1 each; equal thread
    counts give bit-identical tables). ``throttle`` (or ``INTERP_SWEEP_THROTTLE_S``): seconds to
    sleep after each in-process shard, to share a machine or to test interruption.
    """
    throttle = float(os.environ.get("INTERP_SWEEP_THROTTLE_S", throttle))
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    out = Path(out or cfg.out or Path("runs/sweeps") / cfg.name)
    check_before_running(cfg)
    with folder_lock(out):
        return _run(cfg, out, engine, address, workers, threads, progress, throttle)


def check_before_running(cfg) -> None:
    """Every model and every task of the sweep exists, checked before any shard runs (a typo in
    the last model must not surface after the first one's shards are done)."""
    import sys

    from interp.inputs.prompts import prompt_source
    from interp.known_models import KNOWN_MODELS

    for spec in cfg.models:
        if spec.name.strip().lower() in KNOWN_MODELS:
            continue
        path = Path(spec.name).expanduser()
        if not (path.is_dir() and (path / "config.json").is_file()) and not (
            path.is_file() and path.suffix == ".gguf"
        ):
            raise InputError(
                f"sweep model {spec.name[:200]!r} is neither a known name "
                f"({', '.join(KNOWN_MODELS)}) nor a model folder with config.json or a .gguf file"
            )
    tasks = sorted({p.source for p in cfg.prompts if p.kind == "task"})
    if tasks:
        source = prompt_source("task")
        check = getattr(sys.modules.get(source.__module__), "check_tasks", None)
        if check is not None:  # the task source's own validator (circuits.tasks.check_tasks)
            check(tasks)


def _run(cfg, out, engine, address, workers, threads, progress, throttle) -> SweepResult:
    shards = plan(cfg)
    pending = [s for s in shards if not store.is_done(out, s)]
    computed = {"n": 0, "prompts": 0}

    def sink(shard: Shard, tables: dict | None, info: dict) -> None:
        if tables is None:
            store.write_failure(out, shard, info["error"], info["attempts"])
            return
        store.write_shard(out, shard, tables, info)
        computed["n"] += 1
        first = next(iter(tables.values()), pd.DataFrame())
        # prompts actually computed (a task set may yield fewer than the shard's slice)
        computed["prompts"] += int(first["prompt"].nunique()) if "prompt" in first else 0

    t0 = time.perf_counter()
    cluster = None
    if pending and engine == "local":
        run_local(pending, cfg.retries, sink, threads=threads, progress=progress,
                  throttle=throttle)  # fmt: skip
    elif pending:
        cluster = run_ray(pending, cfg.retries, sink, workers=workers or cfg.workers,
                          gpus_per_worker=cfg.gpus_per_worker, address=address,
                          progress=progress)  # fmt: skip
    seconds = time.perf_counter() - t0
    tables = store.read_dataset(out)
    failed = store.failures(out)
    names = {m.label: m.name for m in cfg.models}
    length_sets = {p.name for p in cfg.prompts if p.kind == "haystack"}
    written = aggregate(out, tables, names, length_sets) if tables else {}
    result = SweepResult(out, len(shards), len(shards) - len(pending), computed["n"], failed,
                         seconds, computed["prompts"], tables)  # fmt: skip
    write_json(
        {
            "config": cfg.to_dict(),
            "config_file": str(cfg.source) if cfg.source else None,
            "engine": engine,
            "address": address,
            "cluster_resources": cluster,
            "shards": {
                "total": len(shards),
                "reused": result.reused,
                "computed": result.computed,
                "failed": len(failed),
            },  # fmt: skip
            "failures": failed,
            "seconds": round(seconds, 3),
            "prompts_computed": result.prompts_computed,
            "prompts_per_second": round(result.prompts_per_second, 3),
            "written": written,
            "dataset": "data/ (hive-partitioned by model= and detector=)",
            "versions": versions(),
        },
        out / "manifest.json",
    )
    _report(out, cfg, result, written)
    return result


def _report(out: Path, cfg: SweepConfig, r: SweepResult, written: dict) -> None:
    lines = [
        f"# Sweep {cfg.name}",
        "",
        f"{r.n_shards} shards: {r.reused} reused, {r.computed} computed in {r.seconds:.1f} s "
        f"({r.prompts_per_second:.2f} prompts/s), {len(r.failed)} failed.",
        "",
    ]
    for f in r.failed:
        lines.append(f"- FAILED `{f['shard']}` after {f['attempts']} attempts: {f['error']}")
    for name, df in sorted(r.tables.items()):
        col = "score" if "score" in df else "sink_score_0"
        top = df.groupby(["model", "layer", "head"])[col].mean().sort_values(ascending=False)
        best = ", ".join(f"{m} L{la}.H{h} {v:.3f}" for (m, la, h), v in top.head(3).items())
        lines.append(
            f"- `{name}`: {len(df[['model', 'prompt_set', 'length', 'prompt']].drop_duplicates())}"
            f" (model, prompt) pairs; top mean {col}: {best}"
        )
    lines += ["", *[f"![{Path(p).name}](plots/{Path(p).name})" for p in written.get("plots", [])]]
    runs = written.get("runs", [])
    if runs:
        lines += ["", "Dashboard: " + "; ".join(f"`interp dashboard --run {p}`" for p in runs)]
    write_text("\n".join(lines) + "\n", out / "report.md")


__all__ = ["ENGINES", "SweepConfig", "SweepResult", "load_config", "parse_config", "run_sweep"]
