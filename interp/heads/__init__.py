"""Head detectors. Each file registers one detector; ``get_detector(name).run(model)``."""

from interp.heads import (  # noqa: F401 (register)
    anchor,
    duplicate_token,
    induction,
    previous_token,
    retrieval,
    sink,
)
from interp.heads.base import REGISTRY, DetectorResult, get_detector, register

__all__ = ["REGISTRY", "DetectorResult", "get_detector", "register"]
