"""Head detectors. Each file registers one detector; ``get_detector(name).run(model)``."""

from interp.heads import duplicate_token, induction, previous_token, sink  # noqa: F401 (register)
from interp.heads.base import REGISTRY, DetectorResult, get_detector, register

__all__ = ["REGISTRY", "DetectorResult", "get_detector", "register"]
