"""Previous-token heads: attention from each token to the one before it."""

from __future__ import annotations

from transformer_lens.model_bridge import TransformerBridge

from interp.heads.base import DetectorResult, head_frame, register
from interp.heads.classic import pattern_scores, previous_token_pattern
from interp.heads.inputs import all_patterns, text_windows


@register
class PreviousTokenDetector:
    """Score = sum(A * D) / sum(A), D[t, t-1] = 1 (transformer-lens ``detect_head``, "mul"),
    on 64-token windows of ordinary text. Label: score > ``threshold`` (0.4; our choice, no
    paper fixes one)."""

    name = "previous_token"

    def run(self, model: TransformerBridge, *, threshold: float = 0.4) -> DetectorResult:
        batch = text_windows(model)
        scores = pattern_scores(
            all_patterns(model, batch), batch.tokens, batch.lengths, previous_token_pattern
        )
        inputs = {"kind": "text windows", "n_seqs": len(batch.lengths), "n_tokens": 64}
        return DetectorResult(self.name, head_frame(scores, threshold), inputs)
