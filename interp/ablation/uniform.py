"""Interventions on attention scores: uniform attention ("masking" a head in Wu et al. 2024,
docs/methods.md section 1) and hiding the first key (the causal test of an attention sink).

A uniformly masked head's pre-softmax scores are set to 0 on every key the query may see, so
after the softmax it attends uniformly over its visible context. Keys hidden by the causal or
padding mask stay hidden: the bridge's ``hook_attn_scores`` already holds the mask as a very
negative value, and only entries above half the dtype's minimum are overwritten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.defaults import SINK_THRESHOLD
from interp.errors import InputError
from interp.hook_names import act_name


def check_heads(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Validate (layer, head) pairs against the model's shape."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = [(int(layer), int(h)) for layer, h in heads]
    bad = [(la, h) for la, h in heads if not (0 <= la < n_layers and 0 <= h < n_heads)]
    if bad:
        raise InputError(
            f"heads {bad[:5]} do not exist: the model has layers 0..{n_layers - 1} and heads "
            f"0..{n_heads - 1}"
        )
    return heads


def score_hooks(
    model: TransformerBridge,
    heads: Iterable[tuple[int, int]],
    edit: Callable[[torch.Tensor], torch.Tensor],
    rows: torch.Tensor | None = None,
) -> list[tuple[str, Callable]]:
    """Forward hooks on ``hook_attn_scores`` that replace the scores of each (layer, head) in
    ``heads`` by ``edit(scores)`` ([batch, head, query, key] -> same shape, the selected heads
    only). ``rows`` (bool [batch, query], optional): edit only those query rows (e.g. the
    decoding steps of a teacher-forced answer); the others keep their scores."""
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, h in check_heads(model, heads):
        by_layer[layer].append(h)

    def make(idx: list[int]) -> Callable:
        index = sorted(set(idx))

        def hook(scores: torch.Tensor, hook) -> torch.Tensor:
            scores = scores.clone()
            new = edit(scores[:, index].clone())
            if rows is not None:
                new = torch.where(rows[:, None, :, None].to(new.device), new, scores[:, index])
            scores[:, index] = new
            return scores

        return hook

    return [(act_name("attn_scores", layer), make(idx)) for layer, idx in by_layer.items()]


def uniform_scores(scores: torch.Tensor) -> torch.Tensor:
    """Scores [..., query, key] that make the softmax uniform over each query's visible keys
    (the masked keys keep their very negative value)."""
    visible = scores > torch.finfo(scores.dtype).min / 2
    return torch.where(visible, torch.zeros_like(scores), scores)


def hide_first_key(scores: torch.Tensor) -> torch.Tensor:
    """Scores [..., query, key] with key 0 hidden from every query after it (query 0 keeps it:
    in a decoder it sees nothing else)."""
    out = scores.clone()
    out[..., 1:, 0] = torch.finfo(scores.dtype).min
    return out


def hide_sink_keys(scores: torch.Tensor, threshold: float = SINK_THRESHOLD) -> torch.Tensor:
    """Scores [batch, head, query, key] with the head's sink keys hidden: key 0 and every key
    j >= 1 whose sink score s_j = sum_i A[i, j] / (N - j) (computed from these scores' own
    softmax, per head and sequence) exceeds ``threshold``. A key is hidden from the queries
    after it only, so every query keeps at least itself."""
    visible = scores > torch.finfo(scores.dtype).min / 2
    a = scores.float().softmax(-1)
    n_queries = visible.sum(-2).clamp(min=1)  # [batch, head, key]: queries that see key j
    s = a.sum(-2) / n_queries
    sink = s > threshold
    sink[..., 0] = True
    q = torch.arange(scores.shape[-2], device=scores.device)[:, None]
    k = torch.arange(scores.shape[-1], device=scores.device)[None, :]
    hide = sink[..., None, :] & (q > k)  # [batch, head, query, key]
    return scores.masked_fill(hide, torch.finfo(scores.dtype).min)


def uniform_attention_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]], rows: torch.Tensor | None = None
) -> list[tuple[str, Callable]]:
    """Forward hooks that make each (layer, head) in ``heads`` attend uniformly (on the query
    ``rows`` only, when given).

    Use with ``model.hooks(fwd_hooks=...)``, ``model.run_with_hooks`` or
    ``interp.generate.greedy_decode(fwd_hooks=...)``.
    """
    return score_hooks(model, heads, uniform_scores, rows)


def first_key_mask_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[str, Callable]]:
    """Forward hooks that hide key 0 (the first token: a BOS, or the sequence's first token)
    from every query after it in each (layer, head) of ``heads``; the softmax spreads that
    attention over the other visible keys in proportion to theirs. Query 0 keeps key 0 (in a
    decoder it sees nothing else). The causal test of a sink: does the head need to park its
    attention on the first token?"""
    return score_hooks(model, heads, hide_first_key)


def sink_mask_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[str, Callable]]:
    """Forward hooks that hide each head's sink keys (``hide_sink_keys``: key 0 and its hidden
    sinks) from it."""
    return score_hooks(model, heads, hide_sink_keys)
