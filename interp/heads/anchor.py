"""Anchor heads: attention span, WAAD and FAI (Preplan-and-Anchor, arXiv 2510.13554;
docs/methods.md section 3).

For one head's attention map A [t, s] on N tokens:

- span d = mean over t of sum_s A[t, s] * (t - s);
- WAAD_t = sum_{s <= t} A[t, s] * min(t - s, W), W = 10 (windowed average attention distance);
- FAI_s = mean over t in [s + 10, min(N - 1, s + H)] of A[t, s], H = 100 (future attention
  influence; NaN where that window is empty, i.e. for the last 10 tokens).

Heads of the analysed layers are split by span. Default: the paper's choice for its RL
setting, five evenly spaced layers in [floor(L/3), floor(2L/3)] (``paper_layers``: L = 30 gives
10, 13, 15, 18, 20; halves round up); ``layers="middle_third"`` takes every layer of the middle
third instead (our former default), or pass explicit layers. The paper computes everything on
response rows; the bundled inputs (haystack windows, a user's text) have no prompt/response
split, so every row is used. Heads are split by span:
lowest 30 % = local, highest 30 % = global. Abar_loc / Abar_glob are the mean maps of each group;
preplan tokens are the top 40 % of |WAAD_t - WAAD_{t+1}| computed on Abar_loc, anchor tokens the
top 40 % of FAI computed on Abar_glob. The detector's per-head table reports span (``score``),
mean WAAD and FAI and the group; ``label`` marks the global (anchor-forming) heads. Positions are
0-based; the paper's ``min(N, s + H)`` becomes ``min(N - 1, s + H)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.defaults import (
    FAI_WINDOW,
    GROUP_FRACTION,
    LONG_INPUT,
    SINK_THRESHOLD,
    TOKEN_FRACTION,
    WAAD_WINDOW,
)
from interp.errors import InputError
from interp.heads.base import DetectorBase, DetectorResult, between, configure, head_frame, register
from interp.inputs.text import (
    all_patterns,
    check_inputs,
    haystack_windows,
    model_prompt_samples,
)
from interp.models.info import is_causal
from interp.stats import dense
from interp.stats.dense import attention_span
from interp.tokens import TokenBatch, tokenize

W = WAAD_WINDOW
FAI_START, FAI_HORIZON = FAI_WINDOW


def waad(a: Float[Tensor, "... q k"], window: int = W) -> Float[Tensor, "... q"]:
    """WAAD_t = sum_{s <= t} A[t, s] min(t - s, window) (``interp.stats.dense``)."""
    return dense.windowed_distance(a, window)


def fai(
    a: Float[Tensor, "... q k"], start: int = FAI_START, horizon: int = FAI_HORIZON
) -> Float[Tensor, "... k"]:
    """FAI_s = mean of A[t, s] over t in [s + start, min(N - 1, s + horizon)]; NaN if empty."""
    return dense.fai(a, start, horizon)


def top_fraction(values: Tensor, fraction: float = TOKEN_FRACTION) -> Tensor:
    """Bool mask of the top ``fraction`` of the finite entries of a 1-D tensor (at least one)."""
    finite = torch.isfinite(values)
    n = int(finite.sum())
    mask = torch.zeros_like(values, dtype=torch.bool)
    if n == 0:
        return mask
    k = max(1, round(fraction * n))
    idx = torch.where(finite, values, torch.full_like(values, -float("inf"))).topk(k).indices
    mask[idx] = True
    return mask


def waad_jump(w: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """|WAAD_t - WAAD_{t+1}| for t = 0..N-2; NaN at t = N-1 (no next token)."""
    return torch.cat([(w[:-1] - w[1:]).abs(), torch.tensor([float("nan")], device=w.device)])


def preplan_mask(w: Float[Tensor, " n"], fraction: float = TOKEN_FRACTION) -> Tensor:
    """Preplan tokens: top ``fraction`` of |WAAD_t - WAAD_{t+1}| (t = 0..N-2; t = N-1 never)."""
    return top_fraction(waad_jump(w), fraction)


def middle_third(n_layers: int) -> list[int]:
    lo, hi = n_layers // 3, n_layers - n_layers // 3
    return list(range(lo, hi)) or list(range(n_layers))


def paper_layers(n_layers: int, count: int = 5) -> list[int]:
    """``count`` evenly spaced layers in [floor(L/3), floor(2L/3)] (Preplan-and-Anchor's RL
    setting), halves rounded up; fewer when the range holds fewer layers."""
    lo, hi = n_layers // 3, (2 * n_layers) // 3
    if count < 2 or hi <= lo:
        return [lo]
    return sorted({int(np.floor(lo + i * (hi - lo) / (count - 1) + 0.5)) for i in range(count)})


def analysed_layers(n_layers: int, layers: Sequence[int] | str | None) -> list[int]:
    """The layers whose heads are grouped: ``None`` / "paper" (default), "middle_third", or
    explicit layer indices."""
    if layers is None or layers == "paper":
        return paper_layers(n_layers)
    if layers == "middle_third":
        return middle_third(n_layers)
    if isinstance(layers, str):
        raise InputError(f"layers must be 'paper', 'middle_third' or layer indices, got {layers!r}")
    chosen = [int(la) for la in layers]
    if not chosen or not all(0 <= la < n_layers for la in chosen):
        raise InputError(f"layers must be in 0..{n_layers - 1}, got {chosen}")
    return chosen


def head_groups(span: Tensor, layers: Sequence[int]) -> list[list[str]]:
    """'local' / 'global' / 'middle' for heads of ``layers`` by span rank, '' elsewhere."""
    n_layers, n_heads = span.shape
    groups = [["" for _ in range(n_heads)] for _ in range(n_layers)]
    cand = [(la, h) for la in layers for h in range(n_heads)]
    order = sorted(cand, key=lambda x: float(span[x]))
    n_group = max(1, round(GROUP_FRACTION * len(order)))
    for i, (la, h) in enumerate(order):
        groups[la][h] = (
            "local" if i < n_group else "global" if i >= len(order) - n_group else "middle"
        )
    return groups


def token_table(
    head_waad: Float[Tensor, "layer head n"],
    head_fai: Float[Tensor, "layer head n"],
    groups: list[list[str]],
    str_tokens: list[str],
) -> pd.DataFrame:
    """Group-level WAAD (on Abar_loc) and FAI (on Abar_glob) per token, with preplan/anchor.

    WAAD and FAI are linear in the attention map, so the WAAD of the local heads' mean map is
    the mean of their per-head WAADs (same for FAI): no pattern is needed here.
    """
    loc = [(la, h) for la, row in enumerate(groups) for h, g in enumerate(row) if g == "local"]
    glo = [(la, h) for la, row in enumerate(groups) for h, g in enumerate(row) if g == "global"]
    w = torch.stack([head_waad[la, h] for la, h in loc]).mean(0)
    f = torch.stack([head_fai[la, h] for la, h in glo]).mean(0)
    return pd.DataFrame(
        {
            "position": range(len(str_tokens)),
            "token": str_tokens,
            "waad": w.tolist(),
            "waad_jump": waad_jump(w).tolist(),  # what selects preplan tokens
            "fai": f.tolist(),
            "preplan": preplan_mask(w).tolist(),
            "anchor": top_fraction(f).tolist(),
        }
    )


def _dense(model: TransformerBridge, batch: TokenBatch) -> tuple[Tensor, ...]:
    """(span [layer, head], WAAD and FAI [layer, batch, head, n], span without the sink keys
    [layer, head]) from full patterns."""
    pats = all_patterns(model, batch)  # [layer, batch, head, q, k]
    no_sinks = dense.span_without_sinks(pats, SINK_THRESHOLD).mean(1)
    return attention_span(pats).mean(1), waad(pats), fai(pats), no_sinks


def _streamed(model: TransformerBridge, batch: TokenBatch) -> tuple[Tensor, ...]:
    """The same from ``attention_stats`` (no pattern): span = mean_t of the mean distance;
    the span without sinks is not streamed (NaN)."""
    from interp.stats.capture import model_attention_stats

    per_prompt = model_attention_stats(
        model, batch, window=W, fai_window=(FAI_START, FAI_HORIZON), progress=True
    )
    n_layers = int(model.cfg.n_layers)

    def stack(get):
        return torch.stack(
            [torch.cat([get(p[la]) for p in per_prompt]) for la in range(n_layers)]
        )  # [layer, batch, head, n]

    dist = stack(lambda s: s.mean_distance)
    span = dist.mean(-1).mean(1)
    return span, stack(lambda s: s.waad), stack(lambda s: s.fai), torch.full_like(span, torch.nan)


@dataclass(frozen=True)
class AnchorConfig:
    """Options of the anchor analysis: ``n_windows`` haystack windows of ``n_tokens``, the
    analysed ``layers`` (None / "paper": the paper's 5 evenly spaced in [L/3, 2L/3];
    "middle_third"; or layer indices)
    and ``streaming`` (None: when ``n_tokens`` > 512). ``inputs``: "text" (haystack windows)
    or "model_prompts" (the model folder's prompts.txt, at most ``n_windows`` of them, all cut
    to the shortest one's length and to ``n_tokens``)."""

    n_tokens: int = field(default=256, metadata=between(12, 32768))
    n_windows: int = field(default=4, metadata=between(1, 1024))
    layers: tuple[int, ...] | str | None = field(default=None, metadata=between(0, 1000))
    streaming: bool | None = None
    inputs: str = "text"
    span: str = "paper"

    def __post_init__(self) -> None:  # a bad value fails before any model loads
        check_inputs("anchor", self.inputs)
        if self.span not in ("paper", "no_sinks"):
            raise InputError(f"anchor span must be 'paper' or 'no_sinks', not {self.span!r}")
        if self.span == "no_sinks" and self.streaming:
            raise InputError("span='no_sinks' needs the attention patterns: use streaming=False")


@register
class AnchorDetector(DetectorBase):
    name = "anchor"
    causal_only = True
    dashboard = True
    per_prompt = False
    interventional = False
    Config = AnchorConfig

    @staticmethod
    def summary(r: DetectorResult) -> str:
        """One line of the scan summary."""
        t = r.table
        glob = t[t.group == "global"].sort_values("score", ascending=False).head(5)
        heads = ", ".join(f"L{x.layer}.H{x.head} (span {x.score:.1f})" for x in glob.itertuples())
        widest = float(glob.score.max()) if len(glob) else 0.0
        relative = (
            f" Note: 'global' is relative (the top {GROUP_FRACTION:.0%} by span); no head reaches "
            f"far here (widest span {widest:.1f} tokens, under the WAAD window of {W})."
            if widest < W
            else ""
        )
        return (
            f"Anchor analysis on layers {', '.join(map(str, r.inputs['layers']))}: global heads "
            f"(top {GROUP_FRACTION:.0%} span) e.g. {heads}; preplan/anchor tokens per window are "
            f"in detectors/anchor.tokens.parquet.{relative}"
        )

    def run(
        self, model: TransformerBridge, config: AnchorConfig | None = None, **options: Any
    ) -> DetectorResult:
        """Span, WAAD, FAI of every head on ``n_windows`` haystack windows of ``n_tokens``
        (``options``: the fields of ``AnchorConfig``).

        ``streaming`` (default: when ``n_tokens`` > 512) computes them with
        ``interp.stats.capture`` from q and k, never building a pattern.
        """
        c = configure(self, config, **options)
        n_tokens, n_windows = c.n_tokens, c.n_windows
        if not is_causal(model):
            raise InputError("anchor heads are defined for causal (decoder) models")
        if c.inputs == "text":
            batch, kind = haystack_windows(model, n_tokens, n_windows), "haystack windows"
        else:
            batch = model_prompt_samples(model, n_tokens, n_windows, equal=True)
            kind, n_windows = "the model folder's prompts", len(batch.lengths)
            n_tokens = batch.lengths[0]
        streaming = n_tokens > LONG_INPUT if c.streaming is None else c.streaming
        if c.span == "no_sinks" and streaming:
            raise InputError(
                f"span='no_sinks' needs the attention patterns, but {n_tokens} tokens stream "
                f"(> {LONG_INPUT}): pass streaming=False or fewer tokens"
            )
        span, w_all, f_all, no_sinks = (_streamed if streaming else _dense)(model, batch)
        score = no_sinks if c.span == "no_sinks" else span
        layers = analysed_layers(int(model.cfg.n_layers), c.layers)
        groups = head_groups(score, layers)
        flat = [g for row in groups for g in row]
        table = head_frame(
            score,
            float("nan"),
            span_paper=span,
            span_no_sinks=no_sinks,
            mean_waad=w_all.mean((1, 3)),
            mean_fai=f_all.nanmean(3).mean(1),
            group=flat,
        )
        glob = table[table.group == "global"].score
        table["threshold"] = float(glob.min()) if len(glob) else float("nan")
        table["label"] = table.group == "global"
        n_layers, _, n_heads, n = w_all.shape
        head_tokens = pd.DataFrame(
            {
                "layer": np.repeat(np.arange(n_layers), n_windows * n_heads * n),
                "window": np.tile(np.repeat(np.arange(n_windows), n_heads * n), n_layers),
                "head": np.tile(np.repeat(np.arange(n_heads), n), n_layers * n_windows),
                "position": np.tile(np.arange(n), n_layers * n_windows * n_heads),
                "waad": w_all.reshape(-1).numpy().astype(np.float32),
                "fai": f_all.reshape(-1).numpy().astype(np.float32),
            }
        )
        tokens = pd.concat(
            [
                token_table(w_all[:, b], f_all[:, b], groups, batch.str_tokens[b]).assign(window=b)
                for b in range(n_windows)
            ],
            ignore_index=True,
        )
        inputs: dict[str, Any] = {
            "kind": kind,
            "path": "streaming" if streaming else "dense",
            "n_windows": n_windows,
            "n_tokens": n_tokens,
            "layers": layers,
            "layer_choice": "paper: 5 evenly spaced in [L/3, 2L/3]"
            if layers == paper_layers(int(model.cfg.n_layers))
            else "given",
            "W": W,
            "fai_window": [FAI_START, FAI_HORIZON],
            "global_head_fraction_of_analysed": GROUP_FRACTION,
            "span": c.span,
        }
        return DetectorResult(
            self.name, table, inputs, {"head_tokens": head_tokens, "tokens": tokens}
        )


def anchor_tokens(
    model: TransformerBridge, text: str, *, layers: Sequence[int] | str | None = None
) -> pd.DataFrame:
    """Preplan and anchor tokens of ``text``: one row per token with group-level WAAD and FAI.

    Heads are grouped by their span on ``text`` itself (``layers``: see ``analysed_layers``).
    """
    if not is_causal(model):
        raise InputError(
            "anchor and preplan tokens are defined for causal (decoder) models; "
            f"{model.cfg.model_name} attends in both directions"
        )
    batch = tokenize(model, text)
    if batch.lengths[0] < FAI_START + 2:
        raise InputError(f"the text has {batch.lengths[0]} tokens; anchors need at least 12")
    long = batch.lengths[0] > LONG_INPUT
    span, w_all, f_all, _ = (_streamed if long else _dense)(model, batch)
    layers = analysed_layers(int(model.cfg.n_layers), layers)
    return token_table(w_all[:, 0], f_all[:, 0], head_groups(span, layers), batch.str_tokens[0])
