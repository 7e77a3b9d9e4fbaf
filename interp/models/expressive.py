"""Expressive attention (EA, Gros, arXiv 2407.18601; docs/methods.md section 5).

Dot-product attention (DPA) weighs key j for query i by softmax_j(s_ij), s_ij = q_i.k_j/sqrt(d).
EA replaces the exponential by the squared score, so parallel *and* antiparallel pairs attract
attention and orthogonal ones are suppressed:

    a_ij = s_ij^2 / (1 + s_ij^2)   for visible keys j, 0 for masked ones,
    A_ij = a_ij / sum_j' a_ij'

The mask is applied AFTER the nonlinearity (a masked score of -inf or finfo.min would square to
+inf: masking before squaring is the bug docs/methods.md warns about). Choices where the text is
silent: s includes the usual 1/sqrt(d_head) scale (the form "(q.k)^2/(1+(q.k)^2)" is applied to
the same scaled score DPA's softmax sees), and a row whose visible weights are all 0 (every key
exactly orthogonal) stays 0 instead of dividing by zero (a 1e-12 floor on the row sum).

A model marks EA with ``config.interp_attention = "ea"`` (default ``"dpa"``). Two implementations
of the same formula exist, and tests compare them:
- ``expressive_attention``: a Hugging Face ``AttentionInterface`` function (training, plain HF
  forward passes), registered as ``"interp_expressive"``;
- ``patch_bridge``: transformer-lens' bridge recomputes attention itself (so that
  ``hook_attn_scores``, ``hook_pattern``, ``hook_q``/``k``/``z`` fire); its softmax step is
  replaced by ``ea_weights`` on the bridged model's attention components, so every hook name,
  detector, statistic and dashboard view works on EA models unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

ATTN_NAME = "interp_expressive"
KINDS = ("dpa", "ea")


def attention_kind(config: Any) -> str:
    """``"ea"`` or ``"dpa"`` from a Hugging Face config (``interp_attention``, default dpa)."""
    kind = getattr(config, "interp_attention", "dpa") or "dpa"
    if kind not in KINDS:
        raise ValueError(f"interp_attention={kind!r} in the model config; use one of {KINDS}")
    return kind


def ea_weights(scores: Tensor, visible: Tensor | None) -> Tensor:
    """EA weights from scaled scores [..., query, key]; ``visible`` (bool) marks real keys."""
    s2 = scores.float().square()
    a = s2 / (1.0 + s2)
    if visible is not None:
        a = torch.where(visible, a, torch.zeros_like(a))  # after the nonlinearity
    return a / a.sum(-1, keepdim=True).clamp_min(1e-12)


def _visible_from_additive(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return mask
    return mask > torch.finfo(mask.dtype if mask.is_floating_point() else dtype).min / 2


def expressive_attention(
    module: torch.nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """HF attention function: query [b, h, q, d], key/value [b, h_kv, k, d] -> (out, weights)."""
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    visible = None
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        visible = _visible_from_additive(mask, scores.dtype)
    else:  # no mask given: causal when the module is
        if getattr(module, "is_causal", False) and scores.shape[-2] > 1:
            q, k = scores.shape[-2:]
            visible = torch.ones(q, k, dtype=torch.bool, device=scores.device).tril(k - q)
    weights = ea_weights(scores, visible).to(value.dtype)
    if dropout and module.training:
        weights = torch.nn.functional.dropout(weights, p=dropout)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


AttentionInterface.register(ATTN_NAME, expressive_attention)
# without a registered mask function transformers passes no mask at all to a custom attention
# (padding would then be visible); the eager additive mask (0 / finfo.min) is converted above
AttentionMaskInterface.register(ATTN_NAME, eager_mask)


def _ea_masked_softmax(self, attn_scores: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Replacement of the bridge's softmax step: scores arrive with the mask added."""
    finfo_min = torch.finfo(attn_scores.dtype).min
    visible = (attn_scores > finfo_min / 2) & ~torch.isneginf(attn_scores)
    weights = ea_weights(torch.where(visible, attn_scores, 0.0), visible)
    return weights.to(dtype) if dtype is not None else weights.to(attn_scores.dtype)


def patch_bridge(bridge: Any) -> int:
    """Make every attention component of ``bridge`` use EA; returns how many were patched
    (the patch itself lives in ``interp.models.compat``)."""
    from interp.models.compat import replace_attention_softmax
    from interp.models.meta import model_meta

    n = replace_attention_softmax(bridge, _ea_masked_softmax)
    model_meta(bridge).attention = "ea"
    return n
