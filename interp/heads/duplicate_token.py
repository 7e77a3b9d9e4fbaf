"""Duplicate-token heads: attention from a token to earlier copies of itself."""

from __future__ import annotations

from interp.heads.base import register
from interp.heads.classic import PatternDetector, duplicate_token_pairs, duplicate_token_pattern


@register
class DuplicateTokenDetector(PatternDetector):
    """Score = sum(A * D) / sum(A), D[t, s] = 1 for s < t with the same token, on repeated
    random tokens (transformer-lens ``detect_head``, "mul"). Label: score > ``threshold``."""

    name = "duplicate_token"
    detection = staticmethod(duplicate_token_pattern)
    pairs = staticmethod(duplicate_token_pairs)
