"""Plots of detector results: layer x head heatmaps (PNG via matplotlib, HTML via plotly) and
the validation bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interp.heads.base import DetectorResult
from interp.report import atomic_write, heatmap_grid, save_png

_HOVER = "<br>layer %{y} head %{x}<br>score %{z:.3f}<extra></extra>"


def score_frame(results: dict[str, DetectorResult]) -> pd.DataFrame:
    """One row per (layer, head), one column per detector score."""
    frame = None
    for name, r in results.items():
        part = r.table[["layer", "head", "score"]].rename(columns={"score": name})
        frame = part if frame is None else frame.merge(part, on=["layer", "head"])
    return frame


def detector_heatmaps_png(results: dict[str, DetectorResult], path: Path, title: str) -> Path:
    frame = score_frame(results)
    return heatmap_grid(frame, list(results), path, title)


def detector_heatmaps_html(results: dict[str, DetectorResult], path: Path, title: str) -> Path:
    """Interactive heatmaps (hover shows layer, head, score); plotly.js is embedded (offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(results)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    for i, name in enumerate(names, start=1):
        t = results[name].table
        n_layers, n_heads = int(t.layer.max()) + 1, int(t["head"].max()) + 1
        z = np.full((n_layers, n_heads), np.nan)
        z[t.layer.to_numpy(), t["head"].to_numpy()] = t.score.to_numpy()
        fig.add_trace(
            go.Heatmap(
                z=z,
                colorscale="Viridis",
                showscale=False,
                hovertemplate=name + _HOVER,
            ),
            row=1,
            col=i,
        )
        fig.update_yaxes(autorange="reversed", title_text="layer" if i == 1 else None, row=1, col=i)
        fig.update_xaxes(title_text="head", row=1, col=i)
    fig.update_layout(title=title, height=max(400, 18 * n_layers + 150), width=260 * len(names))
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(html))


def validation_png(table: pd.DataFrame, harm: str, path: Path, title: str) -> Path:
    """Bar chart: the harm (``harm``: "drop in accuracy", "increase in loss") for top-K vs each
    random control (mean +- std, dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = [c for c in ("top", "random", "random_same_layers") if (table.condition == c).any()]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, c in enumerate(conds):
        d = table[table.condition == c]["drop"].to_numpy()
        ax.bar(i, d.mean(), yerr=d.std(ddof=1) if len(d) > 1 else 0, capsize=4, alpha=0.7)
        ax.scatter(np.full(len(d), i), d, color="k", s=12, zorder=3)
    ax.set_xticks(range(len(conds)), [c.replace("_", "\n") for c in conds])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(f"{harm}\n(positive = worse)", fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_png(fig, path)
