"""Triton kernels. Without a CUDA GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``,
set automatically before the kernels are defined): exact but slow, for tests on small shapes.

This package imports only torch (and Triton for ``interp.kernels.attention_stats``), so it runs
on a GPU image without transformer-lens. ``python -m interp.kernels.compile_check`` builds every
kernel for real GPU targets on any machine.
"""

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
    # Triton 3.9 warns once that its FP-fusion default will change; keep today's default (fused
    # multiply-add on) explicitly so results do not move when it does.
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return os.environ.get("TRITON_INTERPRET") == "1"
