"""Shared scoring of the classic pattern heads (previous-token, duplicate-token, induction).

Score of a head on one sequence = sum(A * D) / sum(A), with D the 0/1 detection pattern;
averaged over sequences. This is ``transformer_lens.head_detector`` with ``error_measure="mul"``
(the tests check parity), computed for all heads at once and with padding ignored.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def previous_token_pattern(tokens: Int[Tensor, " pos"]) -> Float[Tensor, "pos pos"]:
    """D[t, t-1] = 1."""
    n = tokens.shape[-1]
    return torch.diag(torch.ones(n - 1), diagonal=-1)


def duplicate_token_pattern(tokens: Int[Tensor, " pos"]) -> Float[Tensor, "pos pos"]:
    """D[t, s] = 1 for s < t with tokens[s] == tokens[t]."""
    eq = (tokens[:, None] == tokens[None, :]).float()
    return torch.tril(eq, diagonal=-1)


def induction_pattern(tokens: Int[Tensor, " pos"]) -> Float[Tensor, "pos pos"]:
    """D[t, s] = 1 for 1 <= s <= t with tokens[s-1] == tokens[t], s - 1 < t (attend to the
    token after an earlier copy of the current token)."""
    dup = duplicate_token_pattern(tokens)
    out = torch.zeros_like(dup)
    out[:, 1:] = dup[:, :-1]
    return torch.tril(out)


def pattern_scores(
    patterns: Float[Tensor, "layer batch head pos pos"],
    tokens: Int[Tensor, "batch pos"],
    lengths: list[int],
    detection_fn,
    *,
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Float[Tensor, "layer head"]:
    """Mean over sequences of sum(A * D) / sum(A) for every layer and head."""
    per_seq = []
    for b, n in enumerate(lengths):
        det = detection_fn(tokens[b, :n]).to(patterns.dtype)
        a = patterns[:, b, :, :n, :n].clone()
        if exclude_bos:
            a[..., 0] = 0
        if exclude_current_token:
            a.diagonal(dim1=-2, dim2=-1).zero_()
        per_seq.append((a * det).sum((-2, -1)) / a.sum((-2, -1)).clamp_min(1e-30))
    return torch.stack(per_seq).mean(0)


def run_pattern_detector(name, model, batch, detection_fn, threshold: float, inputs: dict):
    """Score every head of ``model`` on ``batch`` against ``detection_fn`` -> DetectorResult."""
    from interp.heads.base import DetectorResult, head_frame
    from interp.heads.inputs import all_patterns

    scores = pattern_scores(all_patterns(model, batch), batch.tokens, batch.lengths, detection_fn)
    return DetectorResult(name, head_frame(scores, threshold), inputs)
