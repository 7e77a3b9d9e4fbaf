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
    _load,
    app,
    check_model_arg,
    out,
)
from interp.errors import InputError
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

    checks.out_folder(out_dir)
    check_tasks(tasks)
    found, reuse = run_circuits(
        _load(model), tasks, out_dir, n=n, seed=seed, circuit_fraction=fraction,
        sae_epochs=epochs, sae_examples=sae_examples or None,
    )  # fmt: skip
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
    seed: Annotated[int, typer.Option(help="First seed of the discrete-code SAE.")] = 0,
    seeds: Annotated[
        int, typer.Option(min=1, max=100, help="Discrete-code SAE seeds (seed, seed + 1, ...).")
    ] = 5,
    attn_saes: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of attention-output SAEs (`interp attn-saes`); repeat: seeds."),
    ] = None,
    evidence: Annotated[
        bool, typer.Option(help="Every method beside the trivial baselines (claims rule).")
    ] = True,
) -> None:
    """SAE code discovery of head families (retrieval, sink, anchor) on contrasts built for
    each, scored by ROC AUC against the family detector's labels in the run folder; with
    --evidence (default) every method (attention detector, causal estimate, attention-output
    SAEs, discrete-code SAE, write change) beside layer index, write norm and s_0, against the
    causal reference when the run folder holds the family's causal score."""
    from circuits.families import FAMILIES, check_families
    from circuits.run import run_families

    checks.out_folder(out_dir)
    check_families(family or list(FAMILIES), run)  # names and labels before the model loads
    for folder in attn_saes or []:
        if not folder.is_dir():
            raise InputError(
                f"--attn-saes {folder} is not a folder; train SAEs with `interp attn-saes "
                f"MODEL --out {folder}`"
            )
    found = run_families(
        _load(model), family or list(FAMILIES), run, out_dir, seed=seed, sae_epochs=epochs,
        sae_examples=sae_examples or None, seeds=range(seed, seed + seeds),
        attn_saes=attn_saes or [], evidence=evidence,
    )  # fmt: skip
    for name, d in found.items():
        ev = d.summary.get("evidence")
        if not ev:
            continue
        title = f"{name}: vs {ev['reference']} ({ev['n_with_role']}/{ev['n_heads']} heads)"
        t = Table("method", "ROC AUC [95 %]", "seed std", "p null", "verdict", title=title)
        for method, row in ev["methods"].items():
            lo, hi = row["interval"]
            t.add_row(method, f"{row['auc']:.2f} [{lo:.2f}, {hi:.2f}]",
                      f"{row['auc_std']:.3f}" if "auc_std" in row else "",
                      f"{row['p_null']:.2g}", row["verdict"])  # fmt: skip
        if ev["methods"]:
            first = next(iter(ev["methods"].values()))
            for base, row in first["baselines"].items():
                lo, hi = row["interval"]
                t.add_row(f"(baseline) {base}", f"{row['auc']:.2f} [{lo:.2f}, {hi:.2f}]", "",
                          f"{row['p_null']:.2g}", "")  # fmt: skip
        else:
            t.add_row(ev.get("skipped", "no method scored"), "", "", "", "")
        out.print(t)
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


@app.command("attn-saes")
def attn_saes(
    model: ModelArg = DEFAULT_MODEL,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder of the SAEs (one SAELens folder per layer).")
    ] = Path("runs/attn_saes"),
    layers: Annotated[
        str, typer.Option(help="Layers: all, or comma-separated indices (e.g. 0,5,12).")
    ] = "all",
    expansion: Annotated[int, typer.Option(min=1, max=64, help="Latents per input dim.")] = 2,
    k: Annotated[int, typer.Option(min=1, max=4096, help="Active latents per token (TopK).")] = 32,
    epochs: Annotated[int, typer.Option(min=1, max=10000, help="Passes over the tokens.")] = 16,
    tokens: Annotated[int, typer.Option(min=8, max=32768, help="Tokens per window.")] = 256,
    windows: Annotated[
        int, typer.Option(min=1, max=100000, help="Windows of the bundled text (at most).")
    ] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the SAEs' initialisation and batches.")] = 0,
) -> None:
    """Train attention-output SAEs (Kissane et al. 2024): one TopK SAE per layer on the heads'
    concatenated hook_z over the bundled text, saved in the SAELens layout (cfg.json +
    sae_weights.safetensors per layer). Layers already trained with the same settings are
    kept (resume). `interp families --attn-saes DIR` scores head families with them."""
    from interp.inputs.text import haystack_windows
    from interp.sae.attention_output import train_attention_saes

    checks.out_folder(out_dir)
    m = _load(model)
    n_layers = int(m.cfg.n_layers)
    chosen = _layer_list(layers, n_layers)
    n_windows = _available_windows(m, tokens, windows)
    stats = train_attention_saes(
        m, chosen, out_dir, haystack_windows(m, tokens, n_windows), expansion=expansion,
        k=k, epochs=epochs, seed=seed,
    )  # fmt: skip
    table = Table("layer", "FVU", "L0", "dead", "tokens")
    for la in sorted(stats):
        s = stats[la]
        table.add_row(str(la), f"{s['fvu']:.3f}", f"{s['l0']:.1f}",
                      f"{s['dead_fraction']:.1%}", str(s["n_train"]))  # fmt: skip
    out.print(table)
    out.print(f"wrote {out_dir}/")


def _layer_list(spec: str, n_layers: int) -> list[int]:
    from interp.errors import InputError

    if spec.strip() == "all":
        return list(range(n_layers))
    try:
        got = sorted({int(x) for x in spec.split(",") if x.strip()})
    except ValueError:
        raise InputError(
            f"--layers must be 'all' or comma-separated integers, got {spec!r}"
        ) from None
    if not got or got[0] < 0 or got[-1] >= n_layers:
        raise InputError(f"--layers must be in 0..{n_layers - 1}, got {spec!r}")
    return got


def _available_windows(model, n_tokens: int, wanted: int) -> int:
    from interp.errors import InputError
    from interp.inputs.needles import haystack_text
    from interp.tokens import framed_windows

    have = len(framed_windows(model.tokenizer, haystack_text(), n_tokens))
    if have < 1:
        raise InputError(f"the bundled text has no window of {n_tokens} tokens; lower --tokens")
    return min(wanted, have)
