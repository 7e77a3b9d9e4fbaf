"""Head ablations and patching applied with transformer-lens hooks."""

from interp.ablation.heads import ablate, ablation_hooks, head_means
from interp.ablation.uniform import uniform_attention_hooks

__all__ = ["ablate", "ablation_hooks", "head_means", "uniform_attention_hooks"]
