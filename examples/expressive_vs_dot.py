"""Dot-product (DPA) vs expressive attention (EA) on a complexity ladder, over seeds.

    python examples/expressive_vs_dot.py                                   # delay_sum, c = 1..6
    python examples/expressive_vs_dot.py --task recall,delay_sum --complexities 1,2,3,4

Trains one small transformer per (attention, complexity, seed) with ``circuits.toy.train_toy``
(identical architecture, initialisation, data and optimiser; only the scoring differs), reuses
every run already saved under ``--out`` (a stopped sweep resumes), then writes:

- ``results.parquet``: one row per run (held-out accuracy, chance, losses, seconds);
- ``accuracy_vs_complexity.png``: mean +- std over seeds and every seed's point, per attention;
- ``geometry.parquet`` / ``geometry.png``: for the most complex level, the attention-weighted
  distribution of cos(q, k) over attended pairs of every head, EA vs DPA (does EA use
  antiparallel pairs, as the paper argues?).

Each trained model is an ordinary folder: ``interp dashboard --model runs/expressive/...`` shows
its heads (the geometry view included).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import typer  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import interp  # noqa: E402
from circuits.tasks import complexity as tasks  # noqa: E402
from circuits.toy import ToyConfig, load_metrics, train_toy  # noqa: E402
from interp.geometry import angle_summary, attended_pairs  # noqa: E402
from interp.report import write_table  # noqa: E402

COLORS = {"dpa": "tab:blue", "ea": "tab:red"}
LABELS = {"dpa": "dot-product (DPA)", "ea": "expressive (EA)"}


def run_sweep(
    task: str, complexities: list[int], seeds: list[int], steps: int, out: Path
) -> pd.DataFrame:
    rows = []
    grid = [(c, a, s) for c in complexities for a in ("dpa", "ea") for s in seeds]
    for c, att, seed in tqdm(grid, desc="runs"):
        cfg = ToyConfig(attention=att, task=task, complexity=c, seed=seed, steps=steps).check()
        folder = out / f"c{c}_{att}_s{seed}"
        metrics = load_metrics(folder)
        if not metrics or metrics.get("config") != asdict(cfg):
            _, metrics = train_toy(cfg, folder)
        rows.append(
            {
                "task": task,
                "attention": att,
                "complexity": c,
                "seed": seed,
                "accuracy": metrics["accuracy"],
                "chance": metrics["chance"],
                "first_loss": metrics["first_loss"],
                "final_loss": metrics["final_loss"],
                "train_seconds": metrics["train_seconds"],
                "folder": str(folder),
            }
        )
    return pd.DataFrame(rows)


def plot_accuracy(df: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for att, g in df.groupby("attention"):
        stats = g.groupby("complexity")["accuracy"].agg(["mean", "std"]).fillna(0)
        x = stats.index.to_numpy()
        ax.plot(x, stats["mean"], "-o", color=COLORS[att], label=f"{LABELS[att]}, mean")
        ax.fill_between(
            x, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=COLORS[att],
            alpha=0.15,
        )  # fmt: skip
        jitter = -0.08 if att == "dpa" else 0.08
        ax.scatter(g["complexity"] + jitter, g["accuracy"], s=12, color=COLORS[att], alpha=0.6)
    ax.axhline(df["chance"].iloc[0], color="gray", ls=":", label="chance")
    ax.set_xlabel("task complexity")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def geometry(df: pd.DataFrame, task: str, complexity: int, out: Path) -> pd.DataFrame:
    """Attended-pair angles of the seed-0 models at ``complexity``, EA vs DPA."""
    batch = tasks.sample(task, complexity, 32, seed=123_456)
    prompts = [tasks.to_text(row) for row in batch.ids.tolist()]
    summaries, pooled = [], {}
    for att in ("dpa", "ea"):
        row = df[(df.attention == att) & (df.complexity == complexity)].sort_values("seed").iloc[0]
        model = interp.load_model(row["folder"])
        pairs = attended_pairs(model, prompts)
        pooled[att] = pairs
        s = angle_summary(pairs)
        s.insert(0, "attention", att)
        summaries.append(s)
    table = pd.concat(summaries, ignore_index=True)
    write_table(table, out / "geometry.parquet", {"task": task, "complexity": complexity})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    bins = np.linspace(-1, 1, 41)
    for att, pairs in pooled.items():
        axes[0].hist(
            pairs["cos"], bins=bins, weights=pairs["weight"], density=True, histtype="step",
            lw=2, color=COLORS[att], label=LABELS[att],
        )  # fmt: skip
    axes[0].set_xlabel("cos(q_i, k_j) of attended pairs (weighted by attention)")
    axes[0].set_ylabel("density")
    axes[0].set_title(f"{task}, complexity {complexity}: all heads pooled", fontsize=10)
    axes[0].legend(fontsize=8)
    x = np.arange(len(table) // 2)
    for i, att in enumerate(("dpa", "ea")):
        t = table[table.attention == att]
        axes[1].bar(x + (i - 0.5) * 0.4, t["antiparallel_mass"], 0.4, color=COLORS[att],
                    label=f"{LABELS[att]}")  # fmt: skip
    dpa_rows = table[table.attention == "dpa"]
    labels = [f"L{la}H{h}" for la, h in zip(dpa_rows["layer"], dpa_rows["head"], strict=True)]
    axes[1].set_xticks(x, labels, rotation=60, fontsize=7)
    axes[1].set_ylabel("attention on cos < -0.5 pairs")
    axes[1].set_title("antiparallel attention mass per head", fontsize=10)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "geometry.png", dpi=130)
    plt.close(fig)
    return table


def verdict(df: pd.DataFrame) -> str:
    m = df.groupby(["complexity", "attention"])["accuracy"].agg(["mean", "std"]).unstack()
    lines = ["complexity  DPA mean+-std   EA mean+-std   EA-DPA"]
    for c in m.index:
        d, e = m.loc[c, ("mean", "dpa")], m.loc[c, ("mean", "ea")]
        sd, se = m.loc[c, ("std", "dpa")], m.loc[c, ("std", "ea")]
        lines.append(f"{c:>10}  {d:.3f}+-{sd:.3f}    {e:.3f}+-{se:.3f}    {e - d:+.3f}")
    return "\n".join(lines)


def main(
    task: Annotated[str, typer.Option(help="recall, delay_sum or a mixture a,b")] = "delay_sum",
    complexities: Annotated[str, typer.Option(help="comma-separated levels")] = "1,2,3,4,5,6",
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0,1,2,3,4",
    steps: Annotated[int, typer.Option(help="training steps per run")] = 1500,
    out: Annotated[Path, typer.Option(help="sweep folder")] = Path("runs/expressive"),
) -> None:
    levels = [int(c) for c in complexities.split(",")]
    seed_list = [int(s) for s in seeds.split(",")]
    folder = out / task.replace(",", "+")
    folder.mkdir(parents=True, exist_ok=True)
    df = run_sweep(task, levels, seed_list, steps, folder)
    write_table(df, folder / "results.parquet", {"task": task, "steps": steps})
    title = f"{task}: {len(seed_list)} seeds, {steps} steps, 2 layers x 4 heads, d_model 64"
    plot_accuracy(df, folder / "accuracy_vs_complexity.png", title)
    print(verdict(df))
    table = geometry(df, task, max(levels), folder)
    print(table.groupby("attention")[["parallel_mass", "antiparallel_mass", "mean_cos"]].mean())
    print(f"wrote {folder}/results.parquet, accuracy_vs_complexity.png, geometry.png")


if __name__ == "__main__":
    typer.run(main)
