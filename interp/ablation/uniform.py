"""Uniform-attention ablation ("masking" a head in Wu et al. 2024, docs/methods.md section 1).

A masked head's pre-softmax scores are set to 0 on every key the query may see, so after the
softmax it attends uniformly over its visible context. Keys hidden by the causal or padding
mask stay hidden: the bridge's ``hook_attn_scores`` already holds the mask as a very negative
value, and only entries above half the dtype's minimum are overwritten.
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


def uniform_attention_hooks(
    model: TransformerBridge, heads: Iterable[tuple[int, int]]
) -> list[tuple[str, Callable]]:
    """Forward hooks that make each (layer, head) in ``heads`` attend uniformly.

    Use with ``model.hooks(fwd_hooks=...)``, ``model.run_with_hooks`` or
    ``interp.generate.greedy_decode(fwd_hooks=...)``.
    """
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, h in check_heads(model, heads):
        by_layer[layer].append(h)

    def make(idx: list[int]) -> Callable:
        index = sorted(set(idx))

        def hook(scores: torch.Tensor, hook) -> torch.Tensor:  # [batch, head, query, key]
            sel = scores[:, index]
            visible = sel > torch.finfo(sel.dtype).min / 2
            scores = scores.clone()
            scores[:, index] = torch.where(visible, torch.zeros_like(sel), sel)
            return scores

        return hook

    return [(act_name("attn_scores", layer), make(idx)) for layer, idx in by_layer.items()]
