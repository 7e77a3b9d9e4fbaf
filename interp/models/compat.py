"""Small compatibility fixes between the pinned transformer-lens and transformers versions.

transformers 5.2x renamed the attention layers' ``past_key_values`` argument to ``cache``;
transformer-lens 4.3's attention bridge still reads only ``past_key_values`` (or
``layer_past``), so with a KV cache every decode step silently attended to itself alone. We
hand the renamed argument over under the old name. ``tests/test_generate_and_ablation.py``
checks that cached greedy decoding equals full recomputation, so a future fix upstream (or a
regression) shows up there.
"""

from __future__ import annotations

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
        AttentionBridge._update_kv_cache = _update_kv_cache
