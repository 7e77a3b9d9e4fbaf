"""Head ablations and patching applied with transformer-lens hooks."""

from interp.ablation.heads import ablate, ablation_hooks, head_means
from interp.ablation.uniform import first_key_mask_hooks, uniform_attention_hooks

__all__ = [
    "ablate",
    "ablation_hooks",
    "first_key_mask_hooks",
    "head_means",
    "uniform_attention_hooks",
]
