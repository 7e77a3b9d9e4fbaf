"""Induction heads: attention to the token after an earlier copy of the current token."""

from __future__ import annotations

from interp.heads.base import DetectorResult, register
from interp.heads.classic import PatternDetector, induction_pairs, induction_pattern


@register
class InductionDetector(PatternDetector):
    """Score = sum(A * D) / sum(A), D[t, s] = 1 where tokens[s-1] == tokens[t], on repeated
    random tokens (transformer-lens ``detect_head``, "mul"). Label: score > ``threshold``."""

    name = "induction"
    detection = staticmethod(induction_pattern)
    pairs = staticmethod(induction_pairs)

    @staticmethod
    def summary(r: DetectorResult) -> str:
        """One line of the scan summary."""
        t = r.table
        return f"Induction heads (score > {t.threshold.iloc[0]}): {t.label.mean():.1%}."
