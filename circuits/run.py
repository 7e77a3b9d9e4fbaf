"""``interp circuit``: discover circuits for tasks, write Parquet + JSON + plots, and the
overlap between the circuits of two tasks (circuit reuse, Merullo et al. 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from circuits.discovery import Discovery, discover, overlap
from circuits.tasks import check_tasks, make_task
from interp.defaults import DIVERGING_COLORS, SAE_EXAMPLES
from interp.report import save_png, versions, write_json, write_table
from interp.sae import save_sae


def circuit_png(d: Discovery, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = d.table
    n_layers, n_heads = int(t.layer.max()) + 1, int(t["head"].max()) + 1
    fig, axes = plt.subplots(1, 2, figsize=(7, 0.22 * n_layers + 2))
    for ax, col, mark, name in [
        (axes[0], "patch_effect", "in_patching_circuit", "patching effect (normalised)"),
        (axes[1], "sae_node_score", "in_sae_circuit", "SAE node score"),
    ]:
        grid = t[col].to_numpy().reshape(n_layers, n_heads)
        if col == "patch_effect":  # diverging map centred on 0
            lim = float(np.nanmax(np.abs(grid))) or 1.0
            im = ax.imshow(grid, aspect="auto", cmap=DIVERGING_COLORS, vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ys, xs = np.nonzero(t[mark].to_numpy().reshape(n_layers, n_heads))
        ax.scatter(xs, ys, s=10, facecolors="none", edgecolors="k", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title + " (circles: circuit heads)", fontsize=9)
    return save_png(fig, path)


def run_circuits(
    model: TransformerBridge,
    tasks: Sequence[str],
    out: Path,
    *,
    n: int = 20,
    seed: int = 0,
    circuit_fraction: float = 0.1,
    sae_epochs: int = 500,
    sae_examples: int | None = SAE_EXAMPLES,
    progress: bool = True,
) -> tuple[dict[str, Discovery], dict]:
    out = Path(out)
    found: dict[str, Discovery] = {}
    check_tasks(tasks)  # every name first: nothing is written before an unknown task fails
    batches = {name: make_task(model, name, n=n, seed=seed) for name in tasks}
    for name, task in batches.items():
        d = discover(
            model,
            task,
            circuit_fraction=circuit_fraction,
            seed=seed,
            sae_epochs=sae_epochs,
            sae_examples=sae_examples,
            progress=progress,
        )
        write_table(d.table, out / f"{name}.parquet", d.summary)
        write_json({**d.summary, "model": str(model.cfg.model_name), "versions": versions()},
                   out / f"{name}.json")  # fmt: skip
        edges = pd.DataFrame(
            [(i, j, float(d.edges[i, j])) for i, j in zip(*np.nonzero(d.edges), strict=True)],
            columns=["head_a", "head_b", "positive_only_code_pairs"],
        )
        write_table(edges, out / f"{name}.edges.parquet")
        save_sae(d.sae, out / f"{name}_sae", {"task": name, "model": str(model.cfg.model_name)})
        circuit_png(d, out / f"{name}.png", f"{model.cfg.model_name}: {name}")
        found[name] = d
    reuse = {}
    for a, b in combinations(found, 2):
        ta, tb = found[a].table, found[b].table
        reuse[f"{a}|{b}"] = {
            "patching": overlap(ta.in_patching_circuit, tb.in_patching_circuit),
            "sae": overlap(ta.in_sae_circuit, tb.in_sae_circuit),
        }
    if reuse:
        write_json(reuse, out / "overlap.json")
    return found, reuse


def families_png(found: dict, path: Path, title: str) -> Path:
    """Node score of every scored head, split by the detector's label, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(found), figsize=(3.2 * len(found), 3), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (family, d) in zip(axes[0], found.items(), strict=True):
        t = d.table[d.table.scored]
        for x, label in enumerate((False, True)):
            y = t.loc[t.detector_label == label, "sae_node_score"].to_numpy()
            ax.scatter(x + rng.uniform(-0.2, 0.2, len(y)), y, s=6, alpha=0.6)
        ax.set_xticks([0, 1], ["other heads", f"{family} heads"])
        ax.set_ylabel("SAE node score (positive-only codes)")
        ax.set_title(f"{family}: ROC AUC {d.summary['roc_auc']:.2f}", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


def run_families(
    model: TransformerBridge,
    families: Sequence[str],
    run: Path,
    out: Path,
    *,
    seed: int = 0,
    sae_epochs: int = 500,
    sae_examples: int | None = SAE_EXAMPLES,
    progress: bool = True,
    seeds: Sequence[int] | None = None,
    attn_saes: Sequence[Path] = (),
    evidence: bool = False,
) -> dict:
    """SAE discovery of each head family against the detector labels in ``run``; writes
    ``out/<family>.parquet``/``.json`` and ``out/families.png``. ``evidence``: every method
    beside the baselines (``circuits.family_evidence``) in each family's JSON; ``attn_saes``:
    folders of attention-output SAEs (``interp attn-saes``), one per seed."""
    from circuits.families import check_families, discover_family
    from interp.sae.attention_output import load_attention_saes

    check_families(families, run)
    from circuits.family_evidence import baselines

    sae_sets = [load_attention_saes(folder, model) for folder in attn_saes]
    base = baselines(model) if evidence else None  # the same for every family
    out = Path(out)
    found = {}
    for family in families:
        d = discover_family(
            model, family, run, seed=seed, sae_epochs=sae_epochs, sae_examples=sae_examples,
            progress=progress, seeds=seeds, attn_saes=sae_sets, evidence=evidence, baselines=base,
        )  # fmt: skip
        meta = {**d.summary, "model": str(model.cfg.model_name), "run": str(run)}
        write_table(d.table, out / f"{family}.parquet", meta)
        write_json({**meta, "versions": versions()}, out / f"{family}.json")
        found[family] = d
    families_png(found, out / "families.png", f"{model.cfg.model_name}: SAE node scores")
    return found
