"""Metrics for ablation and patching, all read at each prompt's last real token. They return
Python floats, so they detach first: logits that require grad give no warning."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def last_logits(logits: Float[Tensor, "batch pos vocab"], lengths: list[int]) -> Tensor:
    """Logits at each prompt's last real position: [batch, vocab]."""
    idx = torch.tensor(lengths, device=logits.device) - 1
    return logits[torch.arange(logits.shape[0], device=logits.device), idx]


def logit_diff(
    logits: Float[Tensor, "batch pos vocab"],
    lengths: list[int],
    answer: Int[Tensor, " batch"],
    wrong: Int[Tensor, " batch"],
) -> float:
    """Mean over prompts of logit(answer) - logit(wrong) at the last real token."""
    last = last_logits(logits, lengths)
    rows = torch.arange(last.shape[0])
    return float((last[rows, answer] - last[rows, wrong]).mean().detach())


def answer_prob(logits, lengths: list[int], answer: Tensor) -> float:
    """Mean probability of the answer token at the last real token."""
    p = last_logits(logits, lengths).softmax(-1)
    return float(p[torch.arange(p.shape[0]), answer].mean().detach())


def accuracy(logits, lengths: list[int], answer: Tensor, wrong: Tensor) -> float:
    """Fraction of prompts whose answer logit beats the wrong one."""
    last = last_logits(logits, lengths)
    rows = torch.arange(last.shape[0])
    return float((last[rows, answer] > last[rows, wrong]).float().mean().detach())


def kl_to_clean(logits, clean_logits, lengths: list[int]) -> float:
    """Mean KL(clean || run) of the next-token distributions at the last real token."""
    p = last_logits(clean_logits, lengths).log_softmax(-1)
    q = last_logits(logits, lengths).log_softmax(-1)
    return float((p.exp() * (p - q)).sum(-1).mean().detach())


def faithfulness(circuit_metric: float, full_metric: float) -> float:
    """Circuit-only metric / full-model metric (1 = the circuit alone does the task)."""
    return circuit_metric / full_metric if full_metric else float("nan")
