"""Plotly figures of the dashboard views (pure functions of tables and tensors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from sklearn.decomposition import PCA

from dashboards.analysis import AblationView, LayerView, ea_pattern, softmax_pattern
from interp.geometry import qk_cosines
from interp.show.maps import SCALES, attention_map  # noqa: F401  (SCALES: the page's radio)

_MARGIN = dict(l=60, r=20, t=50, b=50)
MAX_POINTS = 4000  # scatter points drawn per view (a uniform sample above that)


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300, margin=_MARGIN)
    return fig


def atlas_figure(scores: pd.DataFrame, column: str, selected: tuple[int, int] | None) -> go.Figure:
    """Layer x head grid of ``column``; ``customdata`` = [layer, head] for click handling."""
    grid = scores.pivot(index="layer", columns="head", values=column)
    layers, heads = grid.index.to_numpy(), grid.columns.to_numpy()
    custom = np.stack(np.meshgrid(heads, layers)[::-1], axis=-1)  # [layer, head, (layer, head)]
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=heads,
            y=layers,
            customdata=custom.tolist(),  # plain lists: typed arrays reach click events as dicts
            colorscale="Viridis",
            colorbar=dict(title=column),
            hovertemplate="L%{y}.H%{x}<br>" + column + " = %{z:.3f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    if selected is not None:
        la, h = selected
        fig.add_shape(
            type="rect", x0=h - 0.5, x1=h + 0.5, y0=la - 0.5, y1=la + 0.5, line=dict(color="red")
        )
    fig.update_layout(
        title=f"Head atlas: {column} (click a head)",
        xaxis=dict(title="head", dtick=1),
        yaxis=dict(title="layer", autorange="reversed"),
        height=max(360, 18 * len(layers) + 120),
        margin=_MARGIN,
    )
    return fig


def scatter_figure(
    scores: pd.DataFrame, x: str, y: str, selected: tuple[int, int] | None
) -> go.Figure:
    """Heads as points at (x score, y score), colored by layer; click selects a head."""
    df = scores.dropna(subset=[x, y])
    fig = go.Figure(
        go.Scatter(
            x=df[x],
            y=df[y],
            mode="markers",
            customdata=df[["layer", "head"]].to_numpy().tolist(),
            marker=dict(color=df["layer"], colorscale="Turbo", colorbar=dict(title="layer")),
            showlegend=False,
            hovertemplate="L%{customdata[0]}.H%{customdata[1]}<br>"
            + f"{x} = %{{x:.3f}}<br>{y} = %{{y:.3f}}<extra></extra>",
        )
    )
    if selected is not None:
        row = df[(df["layer"] == selected[0]) & (df["head"] == selected[1])]
        fig.add_trace(
            go.Scatter(
                x=row[x],
                y=row[y],
                mode="markers",
                marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="red", width=2)),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_layout(
        title=f"Heads by {x} and {y}", xaxis_title=x, yaxis_title=y, height=420, margin=_MARGIN
    )
    return fig


def attention_figure(
    view: LayerView,
    layer: int,
    head: int,
    causal: bool = True,
    *,
    scale: str = "linear",
    hide_first: bool = False,
) -> go.Figure:
    """The head's attention on the prompt: ``interp.show.maps.attention_map`` (dense and
    token-labelled up to the page's 512 tokens, sink keys outlined)."""
    return attention_map(
        view.pattern[head], view.tokens, name=f"L{layer}.H{head}", causal=causal, scale=scale,
        hide_first=hide_first,
    )  # fmt: skip


def _titled(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    """The shared layout of the geometry figures (title, axis titles, legend below)."""
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        height=380,
        margin=_MARGIN,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def _pairs(n: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(n) if causal else np.indices((n, n)).reshape(2, -1)


def geometry_figures(
    view: LayerView,
    layer: int,
    head: int,
    causal: bool = True,
    seed: int = 0,
    scoring: str = "dpa",
) -> tuple[go.Figure, go.Figure, go.Figure]:
    """(cosine histograms, weight vs cosine, PCA of q and k) for one head on one prompt.

    The histograms compare all visible (query, key) pairs with the same pairs weighted by the
    head's own attention (``scoring``: the model's, dot-product softmax or expressive) and by
    the other scoring recomputed from the same q, k ((q.k)^2 vs softmax(q.k), docs/methods.md s.5).
    """
    q, k = view.q[head].float(), view.k[head].float()
    n = q.shape[0]
    cos = qk_cosines(q, k).numpy()
    own = view.pattern[head].float().numpy()
    if scoring == "ea":
        other, own_name, other_name = softmax_pattern(q, k, causal).numpy(), "EA", "softmax"
    else:
        other, own_name, other_name = ea_pattern(q, k, causal).numpy(), "softmax", "EA"
    qi, ki = _pairs(n, causal)
    c, w_own, w_other = cos[qi, ki], own[qi, ki], other[qi, ki]
    bins = np.linspace(-1, 1, 41)
    mid = (bins[:-1] + bins[1:]) / 2
    hist = go.Figure()
    for name, weights in (
        ("all visible pairs", None),
        (f"weighted by the head's attention ({own_name})", w_own),
        (f"weighted by {other_name} from the same q, k", w_other),
    ):
        h, _ = np.histogram(c, bins=bins, weights=weights, density=True)
        hist.add_trace(go.Scatter(x=mid, y=h, mode="lines", line_shape="hvh", name=name))
    _titled(hist, f"L{layer}.H{head}: cos(q, k) distribution", "cos(q_i, k_j)", "density")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(c), MAX_POINTS, replace=False) if len(c) > MAX_POINTS else slice(None)
    toks = np.array(view.tokens, dtype=object)
    custom = np.stack([toks[qi[pick]], toks[ki[pick]]], axis=-1)
    scatter = go.Figure()
    for name, w in ((f"{own_name} (the model's)", w_own), (f"{other_name} (recomputed)", w_other)):
        scatter.add_trace(
            go.Scattergl(
                x=c[pick],
                y=w[pick],
                mode="markers",
                name=name,
                marker=dict(size=4, opacity=0.6),
                customdata=custom,
                hovertemplate="q %{customdata[0]} / k %{customdata[1]}<br>cos %{x:.3f}, "
                "weight %{y:.4f}<extra></extra>",
            )
        )
    _titled(scatter, f"L{layer}.H{head}: weight vs cos(q, k)", "cos(q_i, k_j)", "weight")
    both = torch.cat([q, k]).numpy()
    xy = PCA(n_components=2, random_state=seed).fit_transform(both) if n > 1 else np.zeros((2, 2))
    pca = go.Figure()
    for name, part, symbol in (("queries", xy[:n], "circle"), ("keys", xy[n:], "diamond")):
        pca.add_trace(
            go.Scatter(
                x=part[:, 0],
                y=part[:, 1],
                mode="markers",
                name=name,
                marker=dict(
                    symbol=symbol, color=np.arange(n), colorscale="Viridis", size=8, showscale=False
                ),
                customdata=np.stack([np.arange(n), toks], axis=-1),
                hovertemplate=name[:-1] + " %{customdata[1]} (pos %{customdata[0]})<extra></extra>",
            )
        )
    _titled(pca, f"L{layer}.H{head}: PCA of q, k (color = position)", "PC 1", "PC 2")
    return hist, scatter, pca


def ablation_figure(
    view: AblationView, decode, top: int = 10, title: str = "next-token probabilities"
) -> go.Figure:
    """Grouped bars of the most likely next tokens, clean vs ablated."""
    p_clean, p_abl = view.tokens_clean.exp(), view.tokens_ablated.exp()
    ids = list(dict.fromkeys(p_clean.topk(top).indices.tolist() + p_abl.topk(top).indices.tolist()))
    ids.sort(key=lambda i: -float(p_clean[i]))
    labels = [f"{decode(i)!r}" for i in ids]
    labels = [f"{t} #{i}" if labels.count(t) > 1 else t for t, i in zip(labels, ids, strict=True)]
    fig = go.Figure(
        [
            go.Bar(x=labels, y=p_clean[ids].numpy(), name="clean"),
            go.Bar(x=labels, y=p_abl[ids].numpy(), name="ablated"),
        ]
    )
    fig.update_layout(
        barmode="group",
        title=title,
        yaxis_title="probability",
        height=380,
        margin=_MARGIN,
        legend=dict(orientation="h", y=1.1),
    )
    return fig
