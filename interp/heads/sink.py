"""Attention-sink heads: first-token sinks and hidden sinks (docs/methods.md section 2).

Per head and input window, the sink score of key j is s_j = sum_i A[i,j] / (N - j) (ACT, Yu et al.
ICML 2024, arXiv 2406.15765; alpha_j of Gu et al. ICLR 2025). Sink tokens are {j : s_j > 0.1};
keys other than the first (j >= 1) in that set are hidden sinks. ACT's code drops the first
index above the threshold, which is token 0 whenever s_0 > 0.1; we always treat token 0 as the
first sink, so a head whose s_0 <= 0.1 can still report j >= 1 as hidden sinks.

Inputs follow Gu et al.'s official code (eval_sink_open_source.py): separate text samples, each
tokenized on its own (with the tokenizer's BOS where it adds one) and cut to 64 tokens
(``interp.inputs.text.text_samples``). Their model-level sink metric is the mean over
(sample, layer, head) of the indicator alpha_0 > 0.3, reported as ``inputs["sink_metric"]``
(official: the mean of indicators, not a threshold on a mean). Per head, ``sink_rate`` is the
fraction of samples with alpha_0 > 0.3 (so ``sink_metric`` is its mean over heads).

Per-head label (ours, no paper defines one): score = mean s_0 over samples, label = score > 0.3;
``inputs["sink_head_fraction"]`` is the fraction of labelled heads. With j = 0 the definition
gives s_0 = mean_i A[i, 0], i.e. the first-token sink mass, so ``score`` is both. Extra tables:
``key_scores`` (s_j of every key of every head and sample) and ``hidden_sinks`` (the keys
j >= 1 with s_j > 0.1, with their tokens; the ``window`` column is the sample index). Note that
keys near the end are seen by few queries (s_{N-1} = A[N-1, N-1]); the hidden-sink table keeps
``n_queries`` so users can filter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.defaults import LONG_INPUT, SINK_HEAD_THRESHOLD, SINK_SAMPLE_TOKENS, SINK_THRESHOLD
from interp.heads.base import DetectorBase, DetectorResult, between, configure, head_frame, register
from interp.heads.metrics import ValidationMetric, mean_loss
from interp.inputs.text import (
    all_patterns,
    check_inputs,
    haystack_windows,
    model_prompt_samples,
    own_inputs,
    text_samples,
)
from interp.models.info import is_causal
from interp.stats.dense import sink_scores
from interp.stats.streaming import AttentionStats


def hidden_sink_rows(
    scores: torch.Tensor, lengths: list[int], str_tokens: list[list[str]], layer: int
) -> list[dict]:
    """Rows for every (head, window, key j >= 1) with s_j > 0.1. ``scores``: [batch, head, key]."""
    rows = []
    b_idx, h_idx, j_idx = torch.nonzero(scores[:, :, 1:] > SINK_THRESHOLD, as_tuple=True)
    for b, h, j in zip(b_idx.tolist(), h_idx.tolist(), (j_idx + 1).tolist(), strict=True):
        rows.append(
            {
                "layer": layer,
                "head": h,
                "window": b,
                "position": j,
                "token": str_tokens[b][j],
                "sink_score": float(scores[b, h, j]),
                "n_queries": lengths[b] - j,
            }
        )
    return rows


def _key_table(
    scores: torch.Tensor, lengths: list[int], str_tokens: list[list[str]]
) -> pd.DataFrame:
    """s_j of every (layer, head, window, key j) over real keys; ``scores``: [layer, b, h, k]."""
    n_layers, _, n_heads, _ = scores.shape
    parts = []
    for b, n in enumerate(lengths):
        s = scores[:, b, :, :n]  # [layer, head, n]
        parts.append(
            pd.DataFrame(
                {
                    "layer": np.repeat(np.arange(n_layers), n_heads * n),
                    "head": np.tile(np.repeat(np.arange(n_heads), n), n_layers),
                    "window": b,
                    "position": np.tile(np.arange(n), n_layers * n_heads),
                    "token": np.tile(np.array(str_tokens[b][:n], dtype=object), n_layers * n_heads),
                    "sink_score": s.reshape(-1).numpy().astype(np.float32),
                    # queries that see the key (causal: N - j); few ones make s_j noisy
                    "n_queries": np.tile(n - np.arange(n), n_layers * n_heads).astype(np.int32),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _dense_scores(model: TransformerBridge, batch) -> list[torch.Tensor]:
    patterns = all_patterns(model, batch)
    causal = is_causal(model)
    return [sink_scores(p, batch.lengths, causal=causal) for p in patterns]


def _streamed_scores(model: TransformerBridge, batch) -> list[torch.Tensor]:
    from interp.stats.capture import model_attention_stats

    per_prompt = model_attention_stats(model, batch, progress=True)
    return [
        torch.cat([p[layer].sink_score for p in per_prompt])
        for layer in range(int(model.cfg.n_layers))
    ]


@dataclass(frozen=True)
class SinkConfig:
    """Options of the sink detector. ``streaming`` None: streaming when ``n_tokens`` > 512.
    ``inputs``: "text" (the bundled text samples) or "model_prompts" (the model folder's own
    prompts.txt, e.g. a planted toy model's task sequences)."""

    # Gu et al.'s 64-token text samples
    n_tokens: int = field(default=SINK_SAMPLE_TOKENS, metadata=between(4, 32768))
    # per-sample s_0 > 0.3 (Gu et al.)
    threshold: float = field(default=SINK_HEAD_THRESHOLD, metadata=between(0, 1))
    streaming: bool | None = None
    inputs: str = "text"

    def __post_init__(self) -> None:  # a bad value fails before any model loads
        check_inputs("sink", self.inputs)


@register
class SinkDetector(DetectorBase):
    name = "sink"
    causal_only = False
    dashboard = True
    per_prompt = True
    interventional = False
    Config = SinkConfig

    @staticmethod
    def validation_metric(model: TransformerBridge, seed: int = 1) -> ValidationMetric:
        """Mean next-token loss on 8 windows of 256 tokens of the bundled haystack text, or on
        the model folder's own prompts where it ships them (a toy vocabulary)."""
        if own_inputs(model, SinkDetector):
            batch = model_prompt_samples(model, int(model.cfg.n_ctx))
            text = {"text": "the model folder's prompts", "n_prompts": len(batch.lengths)}
        else:
            batch = haystack_windows(model, 256, 8)
            text = {"text": "haystack windows", "n_windows": len(batch.lengths), "n_tokens": 256}
        return ValidationMetric(
            "text_loss", False, lambda hooks: {"text_loss": mean_loss(model, batch, hooks)}, text
        )

    @staticmethod
    def prompt_pairs(tokens: torch.Tensor) -> None:
        """No pattern positions: a prompt's sink scores come from its column sums."""
        return None

    @staticmethod
    def prompt_scores(stats: AttentionStats, pair_mass: None = None) -> dict[str, torch.Tensor]:
        """Per-head sink scores of one prompt scored on itself: s_0 and the number of hidden
        sinks (keys j >= 1 with s_j > SINK_THRESHOLD), from its streaming statistics."""
        sink = stats.sink_score[0]  # [head, key]
        return {"score": sink[:, 0], "hidden_sinks": (sink[:, 1:] > SINK_THRESHOLD).sum(-1)}

    @staticmethod
    def summary(r: DetectorResult) -> str:
        """One line of the scan summary."""
        hidden = r.extra.get("hidden_sinks")
        common = Counter(hidden.token).most_common(6) if hidden is not None else []
        tokens = ", ".join(f"{tok!r} ({n})" for tok, n in common)
        thr = r.table.threshold.iloc[0]
        return (
            f"Attention sinks on {r.inputs.get('n_tokens')}-token "
            f"{r.inputs.get('source', 'text samples')}: Gu et al.'s "
            f"metric (share of (sample, layer, head) with s_0 > {thr}) "
            f"{r.inputs['sink_metric']:.1%}; heads with mean s_0 > {thr}: "
            f"{r.inputs['sink_head_fraction']:.1%}. Most frequent hidden sinks "
            f"(s_j > {SINK_THRESHOLD}, j >= 1): {tokens or 'none'}."
        )

    def run(
        self, model: TransformerBridge, config: SinkConfig | None = None, **options: Any
    ) -> DetectorResult:
        """Sink scores on text samples of ``n_tokens`` (``text_samples``). ``streaming``
        (default: when ``n_tokens`` > 512) computes s_j from q and k (``interp.stats.capture``),
        no pattern. ``options``: the fields of ``SinkConfig``."""
        c = configure(self, config, **options)
        n_tokens, threshold = c.n_tokens, c.threshold
        if c.inputs == "text":
            batch, kind = text_samples(model, n_tokens=n_tokens), "text samples"
        else:
            batch, kind = model_prompt_samples(model, n_tokens), "the model folder's prompts"
        streaming = n_tokens > LONG_INPUT if c.streaming is None else c.streaming
        per_layer = _streamed_scores(model, batch) if streaming else _dense_scores(model, batch)
        n_layers, n_heads = len(per_layer), int(model.cfg.n_heads)
        s0 = torch.zeros(n_layers, n_heads)
        sink_rate = torch.zeros(n_layers, n_heads)
        rate = torch.zeros(n_layers, n_heads)
        count = torch.zeros(n_layers, n_heads)
        rows: list[dict] = []
        key_scores = []
        for layer in range(n_layers):
            s = per_layer[layer]  # [batch, head, key]
            key_scores.append(s)
            s0[layer] = s[:, :, 0].mean(0)
            sink_rate[layer] = (s[:, :, 0] > threshold).float().mean(0)
            hidden = s[:, :, 1:] > SINK_THRESHOLD  # [b, h, k-1]
            rate[layer] = hidden.any(-1).float().mean(0)
            count[layer] = hidden.sum(-1).float().mean(0)
            rows += hidden_sink_rows(s, batch.lengths, batch.str_tokens, layer)
        sinks = pd.DataFrame(
            rows,
            columns=["layer", "head", "window", "position", "token", "sink_score", "n_queries"],
        )
        top = {
            (layer, h): Counter(g.token).most_common(1)[0][0]
            for (layer, h), g in sinks.groupby(["layer", "head"])
        }
        table = head_frame(
            s0,
            threshold,
            sink_rate=sink_rate,
            hidden_sink_rate=rate,
            mean_hidden_sinks=count,
            top_hidden_token=[
                top.get((layer, h), "") for layer in range(n_layers) for h in range(n_heads)
            ],
        )
        every_key = _key_table(torch.stack(key_scores), batch.lengths, batch.str_tokens)
        inputs = {
            "kind": f"{kind}, each tokenized alone, first n_tokens tokens",
            "source": kind,
            "path": "streaming" if streaming else "dense",
            "n_seqs": len(batch.lengths),
            "n_tokens": n_tokens,
            # Gu et al.: mean over (sample, layer, head) of alpha_0 > threshold
            "sink_metric": float(sink_rate.mean()),
            # ours: the fraction of heads whose mean s_0 is above the threshold
            "sink_head_fraction": float(table.label.mean()),
        }
        extra = {"hidden_sinks": sinks, "key_scores": every_key}
        return DetectorResult(self.name, table, inputs, extra)
