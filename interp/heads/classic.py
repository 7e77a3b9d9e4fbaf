"""Shared scoring of the classic pattern heads (previous-token, duplicate-token, induction).

Score of a head on one sequence = sum(A * D) / sum(A), with D the 0/1 detection pattern;
averaged over sequences. This is ``transformer_lens.head_detector`` with ``error_measure="mul"``
(the tests check parity), computed for all heads at once and with padding ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.defaults import CLASSIC_THRESHOLD
from interp.heads.base import DetectorBase, DetectorResult, between, configure, head_frame
from interp.inputs.text import all_patterns, check_inputs, repeated_random_tokens
from interp.stats.streaming import AttentionStats
from interp.tokens import TokenBatch


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


def previous_token_pairs(tokens: Int[Tensor, " pos"]) -> tuple[Tensor, Tensor]:
    """(t, s) index pairs where ``previous_token_pattern`` is 1, without the n x n matrix."""
    t = torch.arange(1, tokens.shape[-1])
    return t, t - 1


def duplicate_token_pairs(tokens: Int[Tensor, " pos"]) -> tuple[Tensor, Tensor]:
    """(t, s) index pairs where ``duplicate_token_pattern`` is 1 (s < t, same token), found by
    grouping equal tokens: O(pairs) memory instead of the n x n matrix."""
    order = torch.argsort(tokens, stable=True)  # equal tokens stay in position order
    _, counts = torch.unique_consecutive(tokens[order], return_counts=True)
    ts, ss = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for pos, c in zip(torch.split(order, counts.tolist()), counts.tolist(), strict=True):
        if c > 1:
            earlier, later = torch.triu_indices(c, c, offset=1)
            ts.append(pos[later])
            ss.append(pos[earlier])
    return torch.cat(ts), torch.cat(ss)


def induction_pairs(tokens: Int[Tensor, " pos"]) -> tuple[Tensor, Tensor]:
    """(t, s) index pairs where ``induction_pattern`` is 1: s - 1 is an earlier copy of t."""
    t, s = duplicate_token_pairs(tokens)
    return t, s + 1


def pattern_scores(
    patterns: Float[Tensor, "layer batch head pos pos"],
    tokens: Int[Tensor, "batch pos"],
    lengths: list[int],
    detection_fn: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer head"]:
    """Mean over sequences of sum(A * D) / sum(A) for every layer and head."""
    per_seq = []
    for b, n in enumerate(lengths):
        det = detection_fn(tokens[b, :n]).to(patterns.dtype)
        a = patterns[:, b, :, :n, :n]
        per_seq.append((a * det).sum((-2, -1)) / a.sum((-2, -1)).clamp_min(1e-30))
    return torch.stack(per_seq).mean(0)


@dataclass(frozen=True)
class RepeatedTokensConfig:
    """Options of a classic detector scored on ``n_seqs`` repeated random sequences (two copies
    of 32 tokens, drawn with ``seed``); label = score > ``threshold``."""

    threshold: float = field(default=CLASSIC_THRESHOLD, metadata=between(0, 1))
    n_seqs: int = field(default=8, metadata=between(1, 4096))
    seed: int = field(default=0, metadata=between(0, 4294967295))


TEXT_WINDOW_INPUTS = ("text", "repeated_tokens", "model_prompts")


@dataclass(frozen=True)
class TextWindowsConfig:
    """Options of a classic detector scored on the bundled text windows (64 tokens), or, with
    ``inputs="repeated_tokens"``, on ``n_seqs`` repeated random sequences, or with
    ``inputs="model_prompts"`` on the model folder's prompts.txt (both for a model whose
    vocabulary is not English words, such as the planted toy models)."""

    threshold: float = field(default=CLASSIC_THRESHOLD, metadata=between(0, 1))
    inputs: str = "text"

    def __post_init__(self) -> None:  # a bad value fails before any model loads
        check_inputs("previous_token", self.inputs, TEXT_WINDOW_INPUTS)

    n_seqs: int = field(default=8, metadata=between(1, 4096))
    seed: int = field(default=0, metadata=between(0, 4294967295))


class PatternDetector(DetectorBase):
    """Base of the classic detectors: a subclass sets ``name`` and ``detection`` (the 0/1
    pattern function) and may override ``make_inputs`` and ``Config`` (default: repeated
    random tokens)."""

    name: ClassVar[str]
    causal_only: ClassVar[bool] = False
    dashboard: ClassVar[bool] = True
    per_prompt: ClassVar[bool] = True  # the sweep scores D-pairs of each prompt (pair_weights)
    interventional: ClassVar[bool] = False
    Config: ClassVar[type] = RepeatedTokensConfig
    detection: ClassVar[Any]  # staticmethod: tokens [pos] -> D as a [pos, pos] mask
    pairs: ClassVar[Any]  # staticmethod: the same D as (t, s) pairs

    def prompt_pairs(self, tokens: Int[Tensor, " pos"]) -> tuple[Tensor, Tensor]:
        """Where D is 1 on a prompt's own tokens (the sweep sums attention there)."""
        return type(self).pairs(tokens)

    def prompt_scores(self, stats: AttentionStats, pair_mass: Tensor | None) -> dict[str, Tensor]:
        """Per-head score of one prompt scored on itself: sum(A * D) / sum(A) from the summed
        weight at ``prompt_pairs`` (``pair_mass``, [head]); NaN where D is empty."""
        total = stats.col_sum[0].sum(-1)  # sum of A over the pattern, per head
        if pair_mass is None:
            return {"score": total * torch.nan}
        return {"score": pair_mass / total}

    def make_inputs(
        self, model: TransformerBridge, config: Any
    ) -> tuple[TokenBatch, dict[str, Any]]:
        batch = repeated_random_tokens(model, n_seqs=config.n_seqs, seed=config.seed)
        return batch, {
            "kind": "repeated random tokens",
            "n_seqs": config.n_seqs,
            "half_len": 32,
            "seed": config.seed,
        }

    def run(self, model: TransformerBridge, config: Any = None, **options: Any) -> DetectorResult:
        """Score every head; label = score > ``threshold`` (``CLASSIC_THRESHOLD`` 0.4: our
        choice, no paper fixes one). ``options``: the fields of the detector's ``Config``."""
        c = configure(self, config, **options)
        batch, inputs = self.make_inputs(model, c)
        patterns = all_patterns(model, batch)
        scores = pattern_scores(patterns, batch.tokens, batch.lengths, type(self).detection)
        return DetectorResult(self.name, head_frame(scores, c.threshold), inputs)
