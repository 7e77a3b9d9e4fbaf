"""Previous-token heads: attention from each token to the one before it."""

from __future__ import annotations

from transformer_lens.model_bridge import TransformerBridge

from interp.heads.base import DetectorResult, register
from interp.heads.classic import previous_token_pattern, run_pattern_detector
from interp.heads.inputs import text_windows


@register
class PreviousTokenDetector:
    """Score = sum(A * D) / sum(A), D[t, t-1] = 1 (transformer-lens ``detect_head``, "mul"),
    on 64-token windows of ordinary text. Label: score > ``threshold`` (0.4; our choice, no
    paper fixes one)."""

    name = "previous_token"

    def run(self, model: TransformerBridge, *, threshold: float = 0.4) -> DetectorResult:
        batch = text_windows(model)
        inputs = {"kind": "text windows", "n_seqs": len(batch.lengths), "n_tokens": 64}
        return run_pattern_detector(
            self.name, model, batch, previous_token_pattern, threshold, inputs
        )
