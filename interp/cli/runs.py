"""Longer runs and the cache: train-toy, sweep, cache-dir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp import checks
from interp.cli.common import (
    app,
    console,
    out,
)


@app.command("train-toy")
def train_toy_cmd(
    attention: Annotated[str, typer.Option(help="dpa (softmax of q.k) or ea ((q.k)^2).")] = "ea",
    task: Annotated[
        str, typer.Option(help="recall, delay_sum, or a mixture such as recall,delay_sum.")
    ] = "recall",
    complexity: Annotated[int, typer.Option(help="The task's complexity knob.")] = 4,
    seed: Annotated[int, typer.Option(help="Initialisation and data seed.")] = 0,
    steps: Annotated[int, typer.Option(min=1)] = 1500,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option()] = 3e-3,
    n_layers: Annotated[int, typer.Option(min=1)] = 2,
    n_heads: Annotated[int, typer.Option(min=1)] = 4,
    folder: Annotated[
        Path | None, typer.Option("--out", help="Model folder (default runs/toy/...).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT holds this run.")] = False,
    planted: Annotated[
        str | None,
        typer.Option(
            help="Train a model with a planted mechanism (induction, recall, sink, no_bos; "
            "the v2 models mixture, mixture_b: 4 layers x 8 heads, four mechanisms) from its "
            "fixed recipe (the other options are ignored) and write ground_truth.json: its "
            "circuits established by ablation, its sink heads by hiding the first token "
            "(circuits.planted)."
        ),
    ] = None,
) -> None:
    """Train a small transformer with dot-product or expressive attention on a toy task.

    Saves a Hugging Face folder (load it with `interp dashboard --model OUT` or
    interp.load_model) with metrics.json (held-out accuracy, chance, losses, time).
    """
    from dataclasses import asdict

    from circuits.toy import ToyConfig, load_metrics, train_toy

    if planted is not None:
        _train_planted(planted, folder, force)
        return
    cfg = ToyConfig(
        attention=attention, task=task, complexity=complexity, seed=seed, steps=steps,
        batch_size=batch_size, lr=lr, n_layers=n_layers, n_heads=n_heads,
    ).check()  # fmt: skip
    name = f"{task.replace(',', '+')}_c{complexity}_{attention}_s{seed}"
    folder = checks.out_folder(folder or Path("runs/toy") / name)
    done = load_metrics(folder)
    if done and done.get("config") == asdict(cfg) and not force:
        metrics = done
        console.print(f"{folder} already holds this run (--force retrains)")
    else:
        _, metrics = train_toy(cfg, folder)
    out.print(
        f"{attention} on {task} (complexity {complexity}, seed {seed}): held-out accuracy "
        f"{metrics['accuracy']:.3f} (chance {metrics['chance']:.3f}), loss "
        f"{metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}, "
        f"{metrics['train_seconds']:.0f} s; saved {folder}"
    )


def _train_planted(name: str, folder: Path | None, force: bool) -> None:
    from circuits.planted import check_name, describe, load_ground_truth, train_planted

    check_name(name)
    folder = checks.out_folder(folder or Path("runs/planted") / name)
    if (folder / "ground_truth.json").is_file() and not force:
        truth = load_ground_truth(folder)
        console.print(f"{folder} already holds this model (--force retrains)")
    else:
        truth = train_planted(name, folder)
    out.print(f"planted {name}: {describe(truth)}; saved {folder}")


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Sweep file (YAML); see examples/sweep.yaml.")],
    engine: Annotated[str, typer.Option(help="local (in-process) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (HOST:6379); default: start one here.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray actors per model (default: the file's).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default runs/sweeps/NAME).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads of the in-process engine.")
    ] = None,
) -> None:
    """Run (or resume) a declarative sweep: models x prompt sets x context lengths.

    Writes a Parquet dataset partitioned by model and detector, a manifest, per-head summaries,
    dashboard run folders, plots and report.md. Finished shards are never recomputed.
    """
    from interp.sweep import load_config, run_sweep

    cfg = load_config(config)
    result = run_sweep(
        cfg, out_dir, engine=engine, address=address, workers=workers, threads=threads
    )
    out.print(
        f"sweep {cfg.name}: {result.n_shards} shards ({result.reused} reused, "
        f"{result.computed} computed, {len(result.failed)} failed) in {result.seconds:.1f} s, "
        f"{result.prompts_per_second:.2f} prompts/s; report {result.out / 'report.md'}"
    )
    for f in result.failed:
        console.print(
            f"[bold red]failed[/] {f['shard']} after {f['attempts']} attempts: {f['error']}"
        )
    if result.failed:
        raise typer.Exit(code=1)


@app.command("cache-dir")
def cache_dir() -> None:
    """Print the folder where converted models are cached (set INTERP_CACHE_DIR to move it)."""
    from interp.models.cache import cache_root

    out.print(str(cache_root()))
