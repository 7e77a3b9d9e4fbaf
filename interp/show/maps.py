"""Attention maps as plotly figures (pure functions of a pattern and its tokens), shared by the
dashboard and the notebook renderers (``interp.show``).

One head's map is a dense heatmap up to ``DENSE_MAX_TOKENS`` (the dashboard's prompt limit),
lean at every size: the axes are categories named ``token @position`` that the hover reads,
and the weights travel as one float32 typed array (a 128-token map is ~115 KB of JSON, where
per-cell hover labels took ~720 KB and most of the server time). Up to
``LABELLED_MAX_TOKENS`` every token is a tick label; beyond that plotly shows as many labels as
fit and more as you zoom.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from interp.defaults import SINK_THRESHOLD
from interp.errors import InputError
from interp.stats.dense import sink_scores as dense_sink_scores

#: every token is an axis label and each cell's hover names its two tokens up to this length
LABELLED_MAX_TOKENS = 128
#: dense maps up to this length (lean beyond ``LABELLED_MAX_TOKENS``)
DENSE_MAX_TOKENS = 512
#: a key is outlined as a sink when s_j > SINK_THRESHOLD and at least this many queries give
#: it more than SINK_THRESHOLD: on a short prompt s_j of a late key is a mean over few queries,
#: so one query looking at it (a previous-token head) would pass the score alone
SINK_MIN_QUERIES = 4
#: above this many tokens each small multiple of ``layer_grid`` is max-pooled to this many cells
SMALL_MAX = 96
SCALES = ("linear", "log", "percentile")


def sink_scores(pattern: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """s_j = sum_i A[i, j] / (queries that see j) for one head's [query, key] pattern."""
    n = pattern.shape[-1]
    return dense_sink_scores(pattern[None, None], [n], causal=causal)[0, 0]


def sink_keys(pattern: torch.Tensor, causal: bool = True) -> list[int]:
    """Keys outlined as sinks in one head's [query, key] map: s_j > ``SINK_THRESHOLD`` and at
    least ``SINK_MIN_QUERIES`` queries give it more than ``SINK_THRESHOLD``."""
    many = (pattern > SINK_THRESHOLD).sum(0) >= SINK_MIN_QUERIES
    return torch.nonzero((sink_scores(pattern, causal) > SINK_THRESHOLD) & many).flatten().tolist()


def display_weights(
    pattern: torch.Tensor, visible: np.ndarray, scale: str, hide_first: bool
) -> tuple[np.ndarray, str, float, float]:
    """The values drawn for a [query, key] pattern: (z, colorbar title, zmin, zmax).

    ``hide_first``: key 0 removed and every row renormalised over the remaining keys (a row
    with nothing left is 0), so a head's attention beside its first-token sink is readable.
    ``scale``: ``linear`` weights, ``log`` log10 of the weight (floor 1e-4), ``percentile`` the
    weight's rank among the visible weights (0-100)."""
    if scale not in SCALES:
        raise InputError(f"unknown color scale {scale!r}; use one of {', '.join(SCALES)}")
    a = pattern.clone()
    if hide_first:
        a[:, 0] = 0
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-30)
    z = a.numpy().astype(np.float64)
    if scale == "log":
        return np.log10(np.clip(z, 1e-4, None)), "log10 weight", -4.0, 0.0
    if scale == "percentile":
        ranks = np.zeros_like(z)
        values = z[visible]
        order = values.argsort(kind="stable").argsort(kind="stable")
        ranks[visible] = 100.0 * order / max(len(values) - 1, 1)
        return ranks, "percentile", 0.0, 100.0
    return z, "weight", 0.0, 1.0


def _masked(z: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``z`` as float32 with invisible cells NaN (drawn blank); plotly sends it as one typed
    array (base64), not as nested lists of numbers."""
    out = z.astype(np.float32)
    out[~visible] = np.nan
    return out


def _trace(pattern, tokens, z, visible, zmin, zmax, bar, scale, raw) -> tuple[go.Heatmap, dict]:
    """Category axes ``token @pos`` (the hover reads them); up to ``LABELLED_MAX_TOKENS`` every
    token is a tick label, beyond that labels thin out to fit and more appear on zoom. The
    weights travel as float32; with ``raw`` (a display other than the weights) the model's own
    weights ride along as ``customdata`` for the hover."""
    n = len(tokens)
    labels = [f"{t} @{i}" for i, t in enumerate(tokens)]
    value = "weight %{z:.4f}" if scale == "linear" else f"{scale} %{{z:.2f}}"
    custom = None
    if raw:
        custom = _masked(pattern.numpy(), visible)
        value += "<br>weight %{customdata:.4f}"
    trace = go.Heatmap(
        z=_masked(z, visible), x=labels, y=labels, customdata=custom, colorscale="Blues",
        zmin=zmin, zmax=zmax, colorbar=dict(title=bar),
        hovertemplate="query %{y}<br>key %{x}<br>" + value + "<extra></extra>",
    )  # fmt: skip
    if n > LABELLED_MAX_TOKENS:
        return trace, dict(type="category", tickfont=dict(size=7))
    font = dict(size=10 if n <= 64 else 7)
    ticks = dict(type="category", tickmode="array", tickvals=labels, ticktext=list(tokens),
                 tickfont=font)  # fmt: skip
    return trace, ticks


def attention_map(
    pattern: torch.Tensor,
    tokens: list[str],
    *,
    name: str = "",
    causal: bool = True,
    scale: str = "linear",
    hide_first: bool = False,
) -> go.Figure:
    """One head's [query, key] ``pattern`` over ``tokens`` as a dense heatmap (at most
    ``DENSE_MAX_TOKENS``); ``name`` (e.g. "L3.H1") starts the title. ``scale`` and
    ``hide_first`` as in ``display_weights``. Sink keys (``sink_keys``) are outlined in red and
    named in the title, which says what the outline means; ``layout.meta`` holds the mode, the
    sink keys and the display options."""
    pattern = pattern.detach().float().cpu()
    n = pattern.shape[0]
    if pattern.shape != (n, n) or len(tokens) != n:
        raise InputError(
            f"pattern {tuple(pattern.shape)} and {len(tokens)} tokens do not match: give one "
            "head's [query, key] pattern and one token per position"
        )
    if n > DENSE_MAX_TOKENS:
        raise InputError(
            f"{n} tokens: one map shows at most {DENSE_MAX_TOKENS}; use the long-document view "
            "(interp.show.long_document) for longer inputs"
        )
    sinks = sink_keys(pattern, causal)
    if hide_first:  # the hidden column is not drawn: no outline, not named as a sink
        sinks = [j for j in sinks if j != 0]
    sink_text = ", ".join(f"{tokens[j]}@{j}" for j in sinks[:8]) or "none"
    visible = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
    if hide_first:
        visible[:, 0] = False
    z, bar, zmin, zmax = display_weights(pattern, visible, scale, hide_first)
    shown = "" if not hide_first else "; first token hidden, rows renormalised"
    if scale != "linear":
        shown += f"; color: {scale}"
    raw = hide_first or scale != "linear"
    trace, ticks = _trace(pattern, tokens, z, visible, zmin, zmax, bar, scale, raw)
    mode = "dense" if n <= LABELLED_MAX_TOKENS else "dense, labels on zoom"
    fig = go.Figure(trace)
    for j in sinks:
        fig.add_shape(
            type="rect", x0=j - 0.5, x1=j + 0.5, y0=-0.5, y1=n - 0.5, line=dict(color="red")
        )
    side = max(420, min(1300, (14 if n <= 64 else 9) * n + 160))
    title = f"{name} attention, " if name else "Attention, "
    fig.update_layout(
        title=(
            f"{title}{n} tokens ({mode}{shown}); sinks (outlined: s_j > {SINK_THRESHOLD}, "
            f">= {SINK_MIN_QUERIES} queries give > {SINK_THRESHOLD}): {sink_text}"
        ),
        xaxis=dict(title="key", tickangle=-60, **ticks),
        yaxis=dict(title="query", autorange="reversed", **ticks),
        height=side,
        margin=dict(l=90, r=20, t=50, b=90),
        meta=dict(mode=mode, sinks=sinks, scale=scale, hide_first=hide_first),
    )
    return fig


def pooled(pattern: torch.Tensor, side: int) -> tuple[np.ndarray, int]:
    """[query, key] -> at most ``side`` x ``side`` cells (max over each block) and the block."""
    n = pattern.shape[-1]
    if n <= side:
        return pattern.numpy(), 1
    block = math.ceil(n / side)
    out = torch.nn.functional.max_pool2d(pattern[None, None], block, ceil_mode=True)
    return out[0, 0].numpy(), block


def layer_grid(pattern: torch.Tensor, layer: int, selected: int | None = None) -> go.Figure:
    """Small multiples of a layer's [head, query, key] ``pattern``, one shared color scale
    (0 to 1); above ``SMALL_MAX`` tokens each cell is the largest weight of its block."""
    from plotly.subplots import make_subplots

    pattern = pattern.detach().float().cpu()
    n_heads, n = pattern.shape[0], pattern.shape[-1]
    cols = min(n_heads, 4)
    rows = math.ceil(n_heads / cols)
    titles = [f"<b>H{h}</b>" if h == selected else f"H{h}" for h in range(n_heads)]
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
        vertical_spacing=0.06,
    )  # fmt: skip
    block = 1
    for h in range(n_heads):
        z, block = pooled(pattern[h], SMALL_MAX)
        fig.add_trace(
            go.Heatmap(
                z=np.asarray(z, dtype=np.float32), zmin=0, zmax=1, colorscale="Blues",
                showscale=h == 0,
                colorbar=dict(title="weight", len=0.6),
                hovertemplate=f"H{h}<br>query %{{y}}<br>key %{{x}}<br>weight %{{z:.3f}}"
                "<extra></extra>",
            ),
            row=h // cols + 1, col=h % cols + 1,
        )  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    note = f"; cells = max over {block} x {block} token blocks" if block > 1 else ""
    fig.update_layout(
        title=f"Layer {layer}: every head on the prompt ({n} tokens{note})",
        height=max(320, 230 * rows + 80),
        margin=dict(l=60, r=20, t=60, b=50),
        meta=dict(block=block, n_heads=n_heads),
    )
    return fig
