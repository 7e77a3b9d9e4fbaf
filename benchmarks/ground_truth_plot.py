"""The figure of ``benchmarks/ground_truth.py``: per planted model, its ground truth (left) and
every method's AUC with its 95 % interval beside the best trivial baseline (right); for the sink
models, per head, the sink detector's score against the causal need."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(4, len(r["rows"])) for r in results]
    fig, axes = plt.subplots(
        len(results), 2, figsize=(13, 0.42 * sum(heights) + 1.0), squeeze=False,
        gridspec_kw={"width_ratios": [1, 2.4], "height_ratios": heights},
    )  # fmt: skip
    for row, res in zip(axes, results, strict=True):
        truth = res["ground_truth"]
        _truth_panel(row[0], fig, res["model"], truth)
        if "first_key_share" in truth:
            _sink_panel(row[1], res, truth)
        else:
            _auc_panel(row[1], res["rows"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _roles_panel(ax, model: str, truth: dict) -> None:
    """v2: each head coloured by its role (the circuits' roles and the sink heads)."""
    roles = [r for r in truth["roles"] if not r.endswith("circuit") and r != "sink"]
    shape = np.array(truth["sinks"]["first_key_cost"]).shape
    grid = np.zeros(shape)
    for i, r in enumerate(roles, start=1):
        for la, h in truth["roles"][r]:
            grid[la, h] = i
    ax.imshow(grid, cmap="tab10", vmin=0, vmax=10)
    for la, h in truth["roles"]["sink"]:
        ax.text(h, la, "s", ha="center", va="center", color="white", fontsize=9, weight="bold")
    ax.set_xticks(range(shape[1]))
    ax.set_yticks(range(shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    legend = ", ".join(f"{i}: {r}" for i, r in enumerate(roles, start=1))
    ax.set_title(f"{model}: roles by cause ({legend}; s: needs the first key)", fontsize=7)


def _truth_panel(ax, fig, model: str, truth: dict) -> None:
    import matplotlib.pyplot as plt

    if truth.get("version") == 2:
        return _roles_panel(ax, model, truth)
    if "recovery" in truth:
        values, kind = np.array(truth["recovery"]), "recovery alone"
    else:
        values = np.array(truth["first_key_share"])
        kind = f"share of the first-key cost\n(all heads: {truth['first_key_cost_all']:.3f} nats)"
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    for la, h in truth["circuit"]:
        ax.add_patch(plt.Rectangle((h - 0.5, la - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{model}: {kind}\n(red: ground truth)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)


def _auc_panel(ax, rows: list[dict]) -> None:
    """Each method's AUC (dot) with its 95 % interval (bar) and the best baseline's AUC (grey
    cross); green where the claims rule says it identifies the role."""
    names = [f"{r['method']} vs {r['against']}" for r in rows]
    for i, r in enumerate(rows):
        if "interval" not in r:
            ax.text(0.01, i, "n/a: " + r["labelled"][:60], va="center", fontsize=7)
            continue
        lo, hi = r["interval"]
        color = "tab:green" if r["verdict"] == "identifies" else "tab:red"
        ax.plot([lo, hi], [i, i], color=color, lw=3, alpha=0.6)
        ax.plot(r["auc"], i, "o", color=color)
        if r.get("best_baseline"):
            ax.plot(r["baselines"][r["best_baseline"]]["auc"], i, "x", color="gray", ms=8)
        seeds = f", {len(r['seeds'])} seeds sd {r['auc_std']:.2f}" if "seeds" in r else ""
        ax.text(1.02, i, f"{r['auc']:.2f} [{lo:.2f}, {hi:.2f}] p={r['p_null']:.2g}{seeds}",
                va="center", fontsize=7)  # fmt: skip
    ax.set_yticks(range(len(rows)), names)
    ax.axvline(0.5, color="gray", ls=":", lw=1)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("ROC AUC against the ground truth (x: best trivial baseline; green: identifies)")


def _sink_panel(ax, res: dict, truth: dict) -> None:
    """Per head: the sink detector's score (mean s_0 on the model's prompts) against the share
    of the first-key cost when it alone loses the first key; dashed: the detector's threshold."""
    from interp.defaults import SINK_HEAD_THRESHOLD

    (row,) = [r for r in res["rows"] if r["method"] == "sink (model prompts)"]
    share = np.array(truth["first_key_share"]).reshape(-1)
    score = np.array(row["scores"])
    n_heads = len(truth["first_key_share"][0])
    sink = np.zeros(len(share), dtype=bool)
    for la, h in truth["circuit"]:
        sink[la * n_heads + h] = True
    ax.scatter(score[~sink], share[~sink], color="tab:blue", label="not a sink (ground truth)")
    ax.scatter(score[sink], share[sink], color="tab:red", label="sink head (ground truth)")
    for i, (x, y) in enumerate(zip(score, share, strict=True)):
        ax.annotate(f"L{i // n_heads}.H{i % n_heads}", (x, y), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.axvline(SINK_HEAD_THRESHOLD, color="gray", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1)
    ax.set_xlabel("sink detector score: mean s_0 on the model's prompts (label > 0.3, dashed)")
    ax.set_ylabel("first key hidden from this head:\nshare of the cost of all", fontsize=8)
    auc = "n/a" if "auc" not in row else f"{row['auc']:.2f}"
    ax.set_title(f"{res['model']}: attention on the first token vs needing it (AUC {auc})",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7, loc="upper left")
