"""Every patch we apply to transformer-lens or transformers, each with its upstream reason.

1. KV cache argument (``apply``): transformers 5.2x renamed the attention layers'
``past_key_values`` argument to ``cache``; transformer-lens 4.3's attention bridge still reads
only ``past_key_values`` (or ``layer_past``), so with a KV cache every decode step silently
attended to itself alone. We hand the renamed argument over under the old name.
``tests/test_generate_and_ablation.py`` checks that cached greedy decoding equals full
recomputation, so a future fix upstream (or a regression) shows up there.

2. Attention normalisation (``replace_attention_softmax``): transformer-lens 4.x offers hooks on
the scores and on the pattern, but the softmax between them is fixed. Expressive attention
(``interp.models.expressive``) needs its own normalisation of the masked scores, so the
attention components of ONE bridge get their ``_masked_softmax`` method replaced (per instance;
the class and other bridges are untouched). ``tests/test_expressive.py`` checks the bridged
patterns against the HF implementation.

(Registering an attention function with transformers' ``AttentionInterface``, as
``interp.stats.capture`` and ``interp.models.expressive`` do, is a public extension point, not a
patch.)
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

_original_update = AttentionBridge._update_kv_cache


def _update_kv_cache(self: AttentionBridge, k: Any, v: Any, **kwargs: Any) -> Any:
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        kwargs["past_key_values"] = kwargs["cache"]
    return _original_update(self, k, v, **kwargs)


def apply() -> None:
    """Install the fix once (idempotent)."""
    if AttentionBridge._update_kv_cache is not _update_kv_cache:
        AttentionBridge._update_kv_cache = _update_kv_cache  # type: ignore[method-assign]


def replace_attention_softmax(bridge: Any, softmax: Callable) -> int:
    """Use ``softmax(self, scores, dtype=None)`` in every attention component of ``bridge``
    instead of its masked softmax; returns how many components were patched."""
    n = 0
    for block in bridge.blocks:
        attn = block.attn
        if not hasattr(attn, "_masked_softmax"):
            raise RuntimeError(
                f"{type(attn).__name__} has no _masked_softmax step: this transformer-lens "
                "version computes attention differently; the softmax cannot be replaced"
            )
        attn._masked_softmax = types.MethodType(softmax, attn)
        n += 1
    return n
