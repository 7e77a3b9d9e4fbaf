"""The long-document view: every head of a layer along a document of thousands of tokens, from
the streaming statistics (``interp.stats``), never the n x n pattern.

Per position and head it shows one of ``STATISTICS``: the query's attention on the first token
(``sink mass``), its entropy, its mean distance to the keys it reads, or the attention the key
receives (its sink score s_j: the mean weight over the queries that see it). Any window of it
can be opened as an exact map: the weights exp(scale q_t . k_j - lse_t) of the window's query
and key pairs (plus the first token's column), computed from the layer's own q, k and the row
log-sum-exp the statistics kept. The weights are the model's: a window's rows sum to less than 1,
the rest goes to keys outside the window.

Memory: the layer's q and k ([head, n, d_head]) and O(head x n) statistics; the model stops
after the chosen layer. A 4,096-token document through SmolLM2-135M's layer 15 takes seconds on
a laptop CPU (docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from interp.errors import InputError
from interp.shapes import Float
from interp.stats.streaming import AttentionStats, attention_stats, pair_weights
from interp.tokens import display_token, from_token_ids, tokenize

#: name -> (attribute of AttentionStats, per query or per key, unit)
STATISTICS = {
    "sink mass": ("sink_mass", "query", "attention on the first token"),
    "entropy": ("entropy", "query", "nats"),
    "mean distance": ("mean_distance", "query", "tokens"),
    "received": ("sink_score", "key", "mean attention from the queries that see it"),
}
WINDOW = 128
MAX_WINDOW = 512


@dataclass
class LongDocument:
    """One document through one layer: per-head statistics along it and the layer's q, k.

    ``q``, ``k``: [head, n, d_head] post-rotary, kv heads expanded to query heads.
    """

    tokens: list[str]
    layer: int
    causal: bool
    scale: float
    stats: AttentionStats
    q: Float[Tensor, "head n d"]
    k: Float[Tensor, "head n d"]
    sliding_window: int | None = None  # the layer's own (Mistral, Gemma's local layers)

    @property
    def n_heads(self) -> int:
        return int(self.q.shape[0])

    def __repr__(self) -> str:
        return f"LongDocument(layer {self.layer}, {len(self.tokens)} tokens, {self.n_heads} heads)"

    def values(self, statistic: str) -> np.ndarray:
        """[head, n] values of ``statistic`` (one of ``STATISTICS``)."""
        if statistic not in STATISTICS:
            raise InputError(f"unknown statistic {statistic!r}; use one of {', '.join(STATISTICS)}")
        attr = STATISTICS[statistic][0]
        return getattr(self.stats, attr)[0].float().numpy()

    def figure(self, statistic: str = "sink mass", head: int | None = None) -> go.Figure:
        """Head x position heatmap of ``statistic``; ``head`` outlined. The x axis is the
        document's tokens (``token @pos``; zoom to read them)."""
        z = self.values(statistic)
        _, side, unit = STATISTICS[statistic]
        labels = [f"{t} @{i}" for i, t in enumerate(self.tokens)]
        fig = go.Figure(
            go.Heatmap(
                z=z.round(4).tolist(), x=labels, y=[f"H{h}" for h in range(self.n_heads)],
                colorscale="Viridis", colorbar=dict(title=statistic),
                hovertemplate="%{y} " + side + " %{x}<br>" + statistic + " %{z:.3f}"
                "<extra></extra>",
            )
        )  # fmt: skip
        if head is not None:
            fig.add_shape(
                type="rect", x0=-0.5, x1=len(labels) - 0.5, y0=head - 0.5, y1=head + 0.5,
                line=dict(color="red"),
            )  # fmt: skip
        fig.update_layout(
            title=(
                f"Layer {self.layer}, {len(self.tokens)} tokens: {statistic} per {side} ({unit}); "
                "streaming statistics, no n x n pattern (click a cell to open its window)"
            ),
            xaxis=dict(title=side, type="category", tickfont=dict(size=7), nticks=40),
            yaxis=dict(title="head", autorange="reversed"),
            height=max(260, 26 * self.n_heads + 140),
            margin=dict(l=60, r=20, t=60, b=90),
            meta=dict(statistic=statistic, n=len(self.tokens), layer=self.layer),
        )
        return fig

    def window_keys(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(queries, keys) of the window at ``start``: queries start..start+size-1, keys the
        same positions plus the first token when the window does not hold it."""
        n = len(self.tokens)
        if not 1 <= size <= MAX_WINDOW:
            raise InputError(f"a window holds 1 to {MAX_WINDOW} tokens, not {size}")
        if not 0 <= start < n:
            raise InputError(f"the window must start inside the document (0..{n - 1}), not {start}")
        stop = min(n, start + size)
        queries = np.arange(start, stop)
        keys = queries if start == 0 else np.concatenate([[0], queries])
        return queries, keys

    def window_weights(self, head: int, start: int, size: int = WINDOW) -> np.ndarray:
        """[query, key] exact weights of ``head`` in the window (``window_keys``); pairs the
        query cannot see (causal) are NaN."""
        if not 0 <= head < self.n_heads:
            raise InputError(f"head {head} does not exist: heads 0..{self.n_heads - 1}")
        queries, keys = self.window_keys(start, size)
        t, j = np.meshgrid(queries, keys, indexing="ij")
        lse = self.stats.lse[:, head : head + 1]
        w = pair_weights(
            self.q[None, head : head + 1], self.k[None, head : head + 1], lse,
            torch.as_tensor(t.ravel()), torch.as_tensor(j.ravel()), scale=self.scale,
        )[0, 0].reshape(t.shape).numpy()  # fmt: skip
        if self.causal:
            w[j > t] = np.nan
        if self.sliding_window is not None:
            w[(t - j) >= self.sliding_window] = np.nan
        return w

    def window(self, head: int, start: int, size: int = WINDOW):
        """The exact map of ``head`` on the window at ``start`` (``window_keys``), rendered
        inline in a notebook (``Shown``; the figure is ``.figure``)."""
        from interp.show.render import Shown

        return Shown(self.window_figure(head, start, size))

    def window_figure(self, head: int, start: int, size: int = WINDOW) -> go.Figure:
        """The plotly figure of ``window``."""
        w = self.window_weights(head, start, size)
        queries, keys = self.window_keys(start, size)
        label = [f"{self.tokens[i]} @{i}" for i in range(len(self.tokens))]
        inside = np.nansum(w[:, keys >= start], axis=1).mean() if len(queries) else 0.0
        first = np.nanmean(w[:, 0]) if keys[0] == 0 else float("nan")
        zz = w.round(4).astype(object)
        zz[np.isnan(w)] = None
        fig = go.Figure(
            go.Heatmap(
                z=zz.tolist(), x=[label[j] for j in keys], y=[label[i] for i in queries],
                colorscale="Blues", zmin=0, zmax=1, colorbar=dict(title="weight"),
                hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
            )
        )  # fmt: skip
        fig.update_layout(
            title=(
                f"L{self.layer}.H{head}, queries {queries[0]}-{queries[-1]}: exact weights "
                f"(rows keep {inside:.0%} of their attention inside the window"
                + (f", {first:.0%} on the first token" if start > 0 else "")
                + ")"
            ),
            xaxis=dict(title="key", type="category", tickangle=-60, tickfont=dict(size=7)),
            yaxis=dict(title="query", type="category", autorange="reversed",
                       tickfont=dict(size=7)),
            height=max(420, min(1100, 7 * len(queries) + 200)),
            margin=dict(l=90, r=20, t=60, b=90),
            meta=dict(head=head, start=int(queries[0]), keys=keys.tolist()),
        )  # fmt: skip
        return fig

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from interp.show.render import Shown

        return Shown(self.figure())._repr_mimebundle_(include, exclude)


@torch.no_grad()
def long_document(model, text: str | list[int], layer: int) -> LongDocument:
    """Run ``text`` (or its token ids) through ``model`` up to ``layer`` and keep that layer's
    statistics and q, k (``LongDocument``). No attention pattern is built."""
    from interp.models.info import is_causal
    from interp.stats.capture import for_each_layer, layer_sliding_window

    n_layers = int(model.cfg.n_layers)
    if not 0 <= int(layer) < n_layers:
        raise InputError(f"layer {layer} does not exist: layers 0..{n_layers - 1}")
    if isinstance(text, str):
        if not text.strip():
            raise InputError("the document is empty; give it some text")
        batch = tokenize(model, [text])  # refuses more than the model's context length
        ids = batch.tokens[0, : batch.lengths[0]].tolist()
        shown = batch.str_tokens[0][: batch.lengths[0]]
    else:
        ids = [int(i) for i in text]
        batch = from_token_ids(model, [ids])
        shown = batch.str_tokens[0][: len(ids)]
    if len(ids) < 2:
        raise InputError("the document needs at least 2 tokens")
    causal = is_causal(model)
    found: dict[str, Any] = {}

    def record(_layer: int, q: Tensor, k: Tensor, scaling) -> None:
        rep = q.shape[1] // k.shape[1]
        found["q"] = q[0].float().clone()
        found["k"] = k[0].float().repeat_interleave(rep, dim=0).clone()
        found["scale"] = float(scaling) if scaling is not None else q.shape[-1] ** -0.5
        found["sliding"] = layer_sliding_window()
        found["stats"] = attention_stats(
            q, k, causal=causal, scale=scaling, sliding_window=found["sliding"]
        )

    for_each_layer(model, ids, record, [int(layer)])
    tokens = [display_token(t) for t in shown]
    return LongDocument(
        tokens, int(layer), causal, found["scale"], found["stats"], found["q"], found["k"],
        found["sliding"],
    )  # fmt: skip
