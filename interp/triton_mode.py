"""Choose Triton's interpreter before anything imports Triton, without importing torch.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``). Deciding
that must happen when ``interp`` is imported (Triton reads the variable at its own import), but
importing torch there would cost the command line seconds. So the GPU driver's device files
decide first; only when one exists is torch asked whether CUDA really works.
"""

from __future__ import annotations

import os
from pathlib import Path

#: device files of the NVIDIA driver and of ROCm; without any of them there is no GPU for torch
_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/kfd")


def _gpu_usable() -> bool:
    if not any(Path(f).exists() for f in _DRIVER_FILES):
        return False
    import torch

    return bool(torch.cuda.is_available())


def use_interpreter() -> bool:
    """True when the kernels run in Triton's CPU interpreter (no usable GPU)."""
    if "TRITON_INTERPRET" not in os.environ and not _gpu_usable():
        os.environ["TRITON_INTERPRET"] = "1"
    # Triton 3.9 warns once that its FP-fusion default will change; keep today's default (fused
    # multiply-add on) explicitly so results do not move when it does.
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return os.environ.get("TRITON_INTERPRET") == "1"
