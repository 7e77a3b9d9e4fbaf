"""Figures of the per-prompt views: all heads of a layer, heads ranked on the prompt, patching
and direct logit attribution (pure functions of tensors and tables). Data go in as plain lists:
numpy arrays would reach the page (and its tests) as typed-array dicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.analysis import LayerView
from dashboards.prompt_analysis import PatchingView
from interp.defaults import DIVERGING_COLORS
from interp.show.maps import layer_grid

_MARGIN = dict(l=60, r=20, t=60, b=50)
TOP_RANKED = 15


def layer_figure(view: LayerView, layer: int, selected: int | None) -> go.Figure:
    """Small multiples: every head of ``layer`` on the prompt (``interp.show.maps.layer_grid``)."""
    return layer_grid(view.pattern, layer, selected)


def label_threshold(column: str) -> float | None:
    """The score above which the detector named ``column`` labels a head (its default
    config's ``threshold``); None for head statistics without a label."""
    from interp.errors import InterpError
    from interp.heads import get_detector
    from interp.heads.base import configure

    try:
        return float(configure(get_detector(column)).threshold)
    except (InterpError, AttributeError):  # not a detector, or one without a threshold
        return None


def ranked_figure(table: pd.DataFrame, column: str) -> go.Figure:
    """The ``TOP_RANKED`` heads with the largest ``column`` on the prompt (NaN last), with the
    detector's label threshold drawn where it has one."""
    top = table.dropna(subset=[column]).nlargest(TOP_RANKED, column)
    labels = [f"L{r.layer}.H{r.head}" for r in top.itertuples()]
    fig = go.Figure(
        go.Bar(
            x=top[column].tolist(), y=labels, orientation="h", marker_color="#3b6fb6",
            customdata=top[["layer", "head"]].to_numpy().tolist(),
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )  # fmt: skip
    threshold = label_threshold(column)
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="#b00020")
        fig.add_annotation(
            x=threshold, y=1.0, yref="paper", showarrow=False, yanchor="bottom",
            text=f"label threshold {threshold:g}", font=dict(color="#b00020", size=10),
        )  # fmt: skip
    fig.update_layout(
        title=f"Top {len(top)} heads by {column} on this prompt",
        yaxis=dict(autorange="reversed"),
        xaxis_title=column,
        height=max(300, 22 * len(top) + 110),
        margin=_MARGIN,
    )
    return fig


def _grid(z: np.ndarray, title: str, colorbar: str, symmetric: bool) -> go.Heatmap:
    bound = float(np.nanmax(np.abs(z))) if symmetric and np.isfinite(z).any() else None
    return go.Heatmap(
        z=z.tolist(), colorscale=DIVERGING_COLORS if symmetric else "Viridis",
        zmid=0 if symmetric else None,
        zmin=-bound if bound else None, zmax=bound if bound else None,
        colorbar=dict(title=colorbar), xgap=1, ygap=1,
        hovertemplate="L%{y}.H%{x}<br>" + title + " = %{z:.3f}<extra></extra>",
    )  # fmt: skip


def patching_figures(view: PatchingView, decode) -> tuple[go.Figure, go.Figure]:
    """Per-head heatmaps: the normalised patching effect (exact where run, outlined; the
    attribution estimate elsewhere) and the direct logit attribution."""
    pair = f"logit({decode(view.target)!r}) - logit({decode(view.foil)!r})"
    checked = np.argwhere(~np.isnan(view.exact))
    n_exact = len(checked)
    where = "attribution estimate (AtP) on every head" + (
        f"; exact on {n_exact} (outlined)" if n_exact else "; exact on none yet"
    )
    effect = go.Figure(_grid(view.effect, "effect", "effect", symmetric=True))
    effect.data[0].customdata = np.stack(
        [view.estimate.round(4).astype(object), view.exact.round(4).astype(object)], axis=-1
    ).tolist()
    effect.data[
        0
    ].hovertemplate = (
        "L%{y}.H%{x}<br>estimate %{customdata[0]}<br>exact %{customdata[1]}<extra></extra>"
    )
    for la, h in checked:
        effect.add_shape(
            type="rect", x0=h - 0.5, x1=h + 0.5, y0=la - 0.5, y1=la + 0.5,
            line=dict(color="black", width=2),
        )  # fmt: skip
    dla = go.Figure(_grid(view.dla, "direct logit attribution", "logit diff", symmetric=True))
    for fig, title in ((effect, f"patching effect: {pair}<br><sub>{where}</sub>"),
                       (dla, f"direct logit attribution: {pair}")):  # fmt: skip
        fig.update_layout(
            title=title,
            xaxis=dict(title="head", dtick=1),
            yaxis=dict(title="layer", autorange="reversed"),
            height=max(360, 18 * view.dla.shape[0] + 120),
            margin=_MARGIN,
            meta=dict(exact=n_exact),
        )
    return effect, dla
