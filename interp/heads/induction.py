"""Induction heads: attention to the token after an earlier copy of the current token."""

from __future__ import annotations

from transformer_lens.model_bridge import TransformerBridge

from interp.heads.base import DetectorResult, register
from interp.heads.classic import induction_pattern, run_pattern_detector
from interp.heads.inputs import repeated_random_tokens


@register
class InductionDetector:
    """Score = sum(A * D) / sum(A), D[t, s] = 1 where tokens[s-1] == tokens[t], on repeated
    random tokens (transformer-lens ``detect_head``, "mul"). Label: score > ``threshold``."""

    name = "induction"

    def run(
        self, model: TransformerBridge, *, threshold: float = 0.4, n_seqs: int = 8, seed: int = 0
    ) -> DetectorResult:
        batch = repeated_random_tokens(model, n_seqs=n_seqs, seed=seed)
        inputs = {"kind": "repeated random tokens", "n_seqs": n_seqs, "half_len": 32, "seed": seed}
        return run_pattern_detector(self.name, model, batch, induction_pattern, threshold, inputs)
