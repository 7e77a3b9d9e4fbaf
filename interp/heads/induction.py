"""Induction heads: attention to the token after an earlier copy of the current token."""

from __future__ import annotations

from transformer_lens.model_bridge import TransformerBridge

from interp.heads.base import DetectorResult, register
from interp.heads.classic import PatternDetector, induction_pairs, induction_pattern
from interp.heads.metrics import ValidationMetric, mean_loss
from interp.inputs.text import repeated_random_tokens


@register
class InductionDetector(PatternDetector):
    """Score = sum(A * D) / sum(A), D[t, s] = 1 where tokens[s-1] == tokens[t], on repeated
    random tokens (transformer-lens ``detect_head``, "mul"). Label: score > ``threshold``."""

    name = "induction"
    detection = staticmethod(induction_pattern)
    pairs = staticmethod(induction_pairs)

    @staticmethod
    def validation_metric(model: TransformerBridge, seed: int = 1) -> ValidationMetric:
        """Mean next-token loss on the repeated half of 16 fresh repeated random sequences."""
        half = 32
        batch = repeated_random_tokens(model, n_seqs=16, half_len=half, seed=seed)
        return ValidationMetric(
            "induction_loss",
            False,
            lambda hooks: {"induction_loss": mean_loss(model, batch, hooks, from_pos=half + 1)},
            {"kind": "repeated random tokens", "n_seqs": 16, "half_len": half, "seed": seed},
        )

    @staticmethod
    def summary(r: DetectorResult) -> str:
        """One line of the scan summary."""
        t = r.table
        return f"Induction heads (score > {t.threshold.iloc[0]}): {t.label.mean():.1%}."
