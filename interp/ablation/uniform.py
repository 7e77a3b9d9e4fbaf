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
) -> list[tuple[str, Callable]]:
    """Forward hooks on ``hook_attn_scores`` that replace the scores of each (layer, head) in
    ``heads`` by ``edit(scores)`` ([batch, head, query, key] -> same shape, the selected heads
    only)."""
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, h in check_heads(model, heads):
        by_layer[layer].append(h)

    def make(idx: list[int]) -> Callable:
        index = sorted(set(idx))

        def hook(scores: torch.Tensor, hook) -> torch.Tensor:
            scores = scores.clone()
            scores[:, index] = edit(scores[:, index])
            return scores

        return hook

    return [(act_name("attn_scores", layer), make(idx)) for layer, idx in by_layer.items()]


def uniform_attention_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[str, Callable]]:
    """Forward hooks that make each (layer, head) in ``heads`` attend uniformly.

    Use with ``model.hooks(fwd_hooks=...)``, ``model.run_with_hooks`` or
    ``interp.generate.greedy_decode(fwd_hooks=...)``.
    """

    def uniform(sel: torch.Tensor) -> torch.Tensor:
        visible = sel > torch.finfo(sel.dtype).min / 2
        return torch.where(visible, torch.zeros_like(sel), sel)

    return score_hooks(model, heads, uniform)


def first_key_mask_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[str, Callable]]:
    """Forward hooks that hide key 0 (the first token: a BOS, or the sequence's first token)
    from every query after it in each (layer, head) of ``heads``; the softmax spreads that
    attention over the other visible keys in proportion to theirs. Query 0 keeps key 0 (in a
    decoder it sees nothing else). The causal test of a sink: does the head need to park its
    attention on the first token?"""

    def hide_first(sel: torch.Tensor) -> torch.Tensor:  # a copy: selected by a head list
        sel[:, :, 1:, 0] = torch.finfo(sel.dtype).min
        return sel

    return score_hooks(model, heads, hide_first)
