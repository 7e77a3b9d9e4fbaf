"""Previous-token heads: attention from each token to the one before it."""

from __future__ import annotations

from typing import Any

from transformer_lens.model_bridge import TransformerBridge

from interp.heads.base import register
from interp.heads.classic import (
    PatternDetector,
    TextWindowsConfig,
    previous_token_pairs,
    previous_token_pattern,
)
from interp.inputs.text import model_prompt_samples, text_windows
from interp.tokens import TokenBatch


@register
class PreviousTokenDetector(PatternDetector):
    """Score = sum(A * D) / sum(A), D[t, t-1] = 1 (transformer-lens ``detect_head``, "mul"),
    on 64-token windows of ordinary text. Label: score > ``threshold``."""

    name = "previous_token"
    detection = staticmethod(previous_token_pattern)
    pairs = staticmethod(previous_token_pairs)
    Config = TextWindowsConfig

    def make_inputs(
        self, model: TransformerBridge, config: TextWindowsConfig
    ) -> tuple[TokenBatch, dict[str, Any]]:
        if config.inputs == "repeated_tokens":
            return PatternDetector.make_inputs(self, model, config)
        if config.inputs == "model_prompts":
            batch = model_prompt_samples(model)
            return batch, {"kind": "the model folder's prompts", "n_seqs": len(batch.lengths)}
        batch = text_windows(model)
        return batch, {"kind": "text windows", "n_seqs": len(batch.lengths), "n_tokens": 64}
