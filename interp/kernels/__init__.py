"""Triton kernels. Without a GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``,
set by ``interp.triton_mode`` when ``interp`` is imported, before the kernels are defined):
exact but slow, for tests on small shapes.

This package imports only torch (and Triton for ``interp.kernels.attention_stats``), so it runs
on a GPU image without transformer-lens. ``python -m interp.kernels.compile_check`` builds every
kernel for real GPU targets on any machine.
"""

from __future__ import annotations

import importlib.util

from interp.triton_mode import use_interpreter

__all__ = ["triton_available", "use_interpreter"]


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None
