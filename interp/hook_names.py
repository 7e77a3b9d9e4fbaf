"""Transformer-lens hook names of the attention heads, in one place (like ``get_act_name``).

``act_name("pattern", 3)`` -> ``"blocks.3.attn.hook_pattern"``. Short names and layouts:

- ``pattern``, ``attn_scores``: [batch, head, query, key] (``attn_scores`` before softmax);
- ``q``, ``k``, ``v``, ``rot_q``, ``rot_k`` (after rotary, rotary models only), ``z`` (the
  attention-weighted values, before W_O): [batch, pos, head, d_head].

With grouped-query attention the bridge's own ``k``, ``v`` and ``rot_k`` tensors hold the key/value
heads (SmolLM2: 3). ``interp.run_heads`` expands them to one per query head and stores them under
``expanded_name`` (``blocks.3.attn.hook_k.per_query_head``), a name the bridge never uses.
"""

from __future__ import annotations

import re

HEAD_HOOKS: dict[str, str] = {
    "pattern": "attn.hook_pattern",
    "attn_scores": "attn.hook_attn_scores",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "rot_q": "attn.hook_rot_q",
    "rot_k": "attn.hook_rot_k",
    "z": "attn.hook_z",
}
KV_HOOKS = ("k", "v", "rot_k")  # per key/value head in the bridge
PER_QUERY_HEAD = ".per_query_head"
FULL_NAME = re.compile(r"^blocks\.(\d+)\.(attn\.hook_\w+)$")


def act_name(hook: str, layer: int) -> str:
    """Full transformer-lens name of short hook ``hook`` at ``layer``."""
    if hook not in HEAD_HOOKS:
        raise KeyError(f"unknown hook {hook!r}: use one of {', '.join(HEAD_HOOKS)}")
    return f"blocks.{int(layer)}.{HEAD_HOOKS[hook]}"


def short_name(full: str) -> str | None:
    """``blocks.3.attn.hook_k`` -> ``k`` (None for names that are not head hooks)."""
    m = FULL_NAME.match(full)
    if not m:
        return None
    return next((s for s, suffix in HEAD_HOOKS.items() if suffix == m.group(2)), None)


def is_kv(full: str) -> bool:
    """Whether the bridge's tensor under ``full`` holds key/value heads (not query heads)."""
    return short_name(full) in KV_HOOKS


def expanded_name(full: str) -> str:
    """Name under which ``run_heads`` stores a k/v/rot_k tensor expanded per query head."""
    return full + PER_QUERY_HEAD if is_kv(full) else full
