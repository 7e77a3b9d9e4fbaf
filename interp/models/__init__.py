"""Model loading (offline) and model facts."""

from interp.models.info import ModelInfo, is_causal, model_info, n_kv_heads
from interp.models.loader import DEFAULT_MODEL, KNOWN_MODELS, load_model

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "ModelInfo",
    "is_causal",
    "load_model",
    "model_info",
    "n_kv_heads",
]
