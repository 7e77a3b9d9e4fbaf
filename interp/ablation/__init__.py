"""Head ablations applied with transformer-lens hooks."""

from interp.ablation.uniform import uniform_attention_hooks

__all__ = ["uniform_attention_hooks"]
