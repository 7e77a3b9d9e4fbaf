"""Triton kernels. Without a CUDA GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``,
set automatically before the kernels are defined): exact but slow, for tests on small shapes."""

from __future__ import annotations

import importlib.util
import os

import torch


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def use_interpreter() -> bool:
    """True when the kernels run in Triton's CPU interpreter (no CUDA device)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return os.environ.get("TRITON_INTERPRET") == "1"
