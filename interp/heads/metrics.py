"""Validation metrics: what a detector's heads are for, measured under a set of hooks.

A detector that can be validated causally declares ``validation_metric(model, seed)`` returning a
``ValidationMetric`` (``interp.runs.validate`` masks its top heads and compares the metric with
random controls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.tokens import TokenBatch

Hooks = Sequence[tuple[str, Callable]]


@dataclass
class ValidationMetric:
    """A metric under a set of hooks; ``higher_is_better`` fixes the sign of ``drop``."""

    metric: str  # the headline metric; ``evaluate`` may return more
    higher_is_better: bool
    evaluate: Callable[[Hooks], dict[str, float]]
    inputs: dict[str, Any]


def mean_loss(
    model: TransformerBridge, batch: TokenBatch, hooks: Hooks, from_pos: int = 0
) -> float:
    """Mean next-token cross-entropy over predicted positions >= ``from_pos`` (padding ignored)."""
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        logits = model(batch.tokens, attention_mask=batch.attention_mask)
    logp = logits[:, :-1].log_softmax(-1)
    target = batch.tokens[:, 1:]
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = batch.attention_mask[:, 1:].bool().clone()
    keep[:, : max(from_pos - 1, 0)] = False
    return float(nll[keep].mean())
