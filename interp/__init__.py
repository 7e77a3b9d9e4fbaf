"""interp: mechanistic interpretability of attention heads.

Models load offline only (HF_HUB_OFFLINE is forced on import). Without a CUDA GPU,
TRITON_INTERPRET=1 is set before anything imports Triton, so the Triton kernels run (slowly,
exactly) in Triton's interpreter.
"""

from interp.kernels import use_interpreter
from interp.offline import force_offline

force_offline()
use_interpreter()

from interp.attention import HEAD_HOOKS, HeadActivations, run_heads  # noqa: E402
from interp.errors import InputError, InterpError, ModelLoadError, ModelNotFoundError  # noqa: E402
from interp.models import KNOWN_MODELS, ModelInfo, load_model, model_info  # noqa: E402
from interp.tokens import TokenBatch, tokenize  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "HEAD_HOOKS",
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
