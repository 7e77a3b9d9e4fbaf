"""Circuit and head-family discovery: circuit, families."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interp import checks
from interp.cli.common import (
    ModelArg,
    SaeEpochs,
    SaeExamples,
    _fail,
    _load,
    app,
    check_model_arg,
    out,
)
from interp.errors import InterpError
from interp.known_models import DEFAULT_MODEL


@app.command()
def circuit(
    tasks: Annotated[
        list[str],
        typer.Argument(
            help="ioi, colored_objects, greater_than, docstring, induction (2+: overlap)."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Model name or folder.", callback=check_model_arg)
    ] = DEFAULT_MODEL,
    n: Annotated[int, typer.Option(min=2, help="Clean/corrupted prompt pairs per task.")] = 20,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/circuit"),
    fraction: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Circuit size as a fraction of all heads.")
    ] = 0.1,
    epochs: SaeEpochs = 500,
    sae_examples: SaeExamples = 10,
    seed: Annotated[int, typer.Option(help="Seed of prompts and SAE.")] = 0,
) -> None:
    """Circuit discovery: discrete-code SAE vs exhaustive activation patching of every head."""
    from circuits.run import run_circuits
    from circuits.tasks import check_tasks

    try:
        checks.out_folder(out_dir)
        check_tasks(tasks)
        found, reuse = run_circuits(
            _load(model), tasks, out_dir, n=n, seed=seed, circuit_fraction=fraction,
            sae_epochs=epochs, sae_examples=sae_examples or None,
        )  # fmt: skip
    except InterpError as e:
        _fail(e)
    for table in circuit_tables({name: d.summary for name, d in found.items()}):
        out.print(table)
    for pair, o in reuse.items():
        out.print(
            f"overlap {pair}: patching circuits {o['patching']:.0%}, SAE circuits {o['sae']:.0%}"
        )
    out.print(f"wrote {out_dir}/")


def circuit_tables(summaries: dict[str, dict]) -> list[Table]:
    """The circuit summary as two tables of <= 7 columns, so an 80-column terminal shows every
    number whole (one table of 11 columns cut them to "0.6...")."""
    found = Table("task", "clean LD", "acc", "ROC AUC", "AUC held-out", "P@k", "R@k",
                  title="SAE circuit vs patching circuit")  # fmt: skip
    cost = Table("task", "faithfulness patching", "faithfulness SAE", "SAE s", "patching s",
                 title="faithfulness and time")  # fmt: skip
    for name, s in summaries.items():
        found.add_row(
            name, f"{s['clean_logit_diff']:.2f}", f"{s['clean_accuracy']:.2f}",
            f"{s['roc_auc_sae_vs_patching']:.3f}", f"{s['roc_auc_sae_held_out']:.3f}",
            f"{s['precision_at_k']:.2f}", f"{s['recall_at_k']:.2f}",
        )  # fmt: skip
        cost.add_row(
            name, f"{s['faithfulness_patching_circuit']:.2f}",
            f"{s['faithfulness_sae_circuit']:.2f}", f"{s['sae_seconds']:.0f}",
            f"{s['patching_seconds']:.0f}",
        )  # fmt: skip
    return [found, cost]


@app.command()
def families(
    model: ModelArg = DEFAULT_MODEL,
    run: Annotated[
        Path, typer.Option(help="Run folder of `interp scan` holding the detectors' labels.")
    ] = Path("runs/scan"),
    family: Annotated[
        list[str] | None, typer.Option(help="retrieval, sink, anchor (repeat; default all).")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/families"),
    epochs: SaeEpochs = 500,
    sae_examples: SaeExamples = 10,
    seed: Annotated[int, typer.Option(help="Seed of the SAE.")] = 0,
) -> None:
    """SAE code discovery of head families (retrieval, sink, anchor) on contrasts built for
    each, scored by ROC AUC against the family detector's labels in the run folder."""
    from circuits.families import FAMILIES, check_families
    from circuits.run import run_families

    try:
        checks.out_folder(out_dir)
        check_families(family or list(FAMILIES), run)  # names and labels before the model loads
        found = run_families(
            _load(model), family or list(FAMILIES), run, out_dir, seed=seed, sae_epochs=epochs,
            sae_examples=sae_examples or None,
        )  # fmt: skip
    except InterpError as e:
        _fail(e)
    table = Table("family", "examples +/-", "detector heads / scored", "ROC AUC", "AUC held-out")
    for name, d in found.items():
        s = d.summary
        table.add_row(
            name, f"{s['n_positive_examples']}/{s['n_negative_examples']}",
            f"{s['n_detector_heads']}/{s['n_heads_scored']}", f"{s['roc_auc']:.3f}",
            f"{s['roc_auc_held_out']:.3f}",
        )  # fmt: skip
    out.print(table)
    out.print(f"wrote {out_dir}/")
