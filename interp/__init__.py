"""interp: mechanistic interpretability of attention heads.

Models load offline only (HF_HUB_OFFLINE is forced on import). Without a CUDA GPU,
TRITON_INTERPRET=1 is set before anything imports Triton, so the Triton kernels run (slowly,
exactly) in Triton's interpreter.

The package imports lightly: the names below that need transformer-lens / transformers
(``load_model``, ``run_heads``, ...) are loaded on first use, so ``import interp.stats.streaming``
and ``import interp.kernels`` need only torch (and Triton for the kernels) and run on a bare
GPU image.
"""

from __future__ import annotations

import importlib
from typing import Any

from interp.errors import InputError, InterpError, ModelLoadError, ModelNotFoundError
from interp.offline import force_offline
from interp.triton_mode import use_interpreter

force_offline()
use_interpreter()

__version__ = "0.1.0"

_LAZY = {
    "HEAD_HOOKS": "interp.hook_names",
    "act_name": "interp.hook_names",
    "HeadActivations": "interp.attention",
    "run_heads": "interp.attention",
    "KNOWN_MODELS": "interp.models",
    "ModelInfo": "interp.models",
    "load_model": "interp.models",
    "model_info": "interp.models",
    "TokenBatch": "interp.tokens",
    "tokenize": "interp.tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "HEAD_HOOKS",
    "act_name",
    "KNOWN_MODELS",
    "HeadActivations",
    "InputError",
    "InterpError",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "TokenBatch",
    "load_model",
    "model_info",
    "run_heads",
    "tokenize",
]
