"""Head-family scores from attention-output SAEs: the causal role scores' own contrasts
(``interp.heads.causal``: the sink keys hidden, uniform attention on the needle answer's
decoding steps, the far context replaced), attributed to SAE latents by attribution patching
and summed per head by each latent's decoder-norm share (``interp.sae.attention_output``).

With a lossless SAE whose latents each lie in one head's block the score equals the causal
detector's own first-order estimate (tested); a trained SAE regroups each head's change into
features, so the two differ where the SAE's features mix heads or leave error."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.attribution import z_cache
from interp.errors import InputError
from interp.heads.base import configure, get_detector
from interp.sae.attention_output import feature_attribution, pattern_delta, z_delta
from interp.sae.topk import TopKSAE
from interp.shapes import Float

#: head family -> the causal role score whose contrast it uses
FAMILY_DETECTORS = {"sink": "sink_need", "retrieval": "retrieval_effect", "anchor": "anchor_effect"}


def sae_family_scores(
    model: TransformerBridge, saes: dict[int, TopKSAE], family: str, **options: Any
) -> Float[Tensor, "layer head"]:
    """Every head's score for ``family`` (sink, retrieval, anchor): the weighted sum over the
    family's probes of the latents' attribution-patching effects, per head by decoder share.
    Layers without an SAE score 0. ``options``: fields of the causal detector's Config
    (``steps`` > 1: integrated gradients, as the causal estimate)."""
    if family not in FAMILY_DETECTORS:
        raise InputError(
            f"unknown head family {family!r}; choose from {', '.join(FAMILY_DETECTORS)}"
        )
    detector = get_detector(FAMILY_DETECTORS[family])
    c = configure(detector, None, **options)
    total = torch.zeros(int(model.cfg.n_layers), int(model.cfg.n_heads))
    for p in detector.probes(model, c):
        if p.edit is not None:
            keep, delta = pattern_delta(p.edit, p.rows)
        else:
            keep, delta = [], z_delta(z_cache(model, p.corrupted, p.mask, list(saes)))
        heads, _ = feature_attribution(
            model, saes, p.tokens, p.mask, p.metric, delta, keep, steps=c.steps
        )
        total += heads * p.weight
    return total
