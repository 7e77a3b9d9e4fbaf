"""Head detectors. Each file registers one detector; ``get_detector(name).run(model)``.

The import order below is the registration order: the order of scans, summaries and plots
(cheap detectors first, the slow retrieval grid last).
"""

# isort: off
from interp.heads import sink  # noqa: F401 (registers)
from interp.heads import previous_token  # noqa: F401
from interp.heads import duplicate_token  # noqa: F401
from interp.heads import induction  # noqa: F401
from interp.heads import anchor  # noqa: F401
from interp.heads import retrieval  # noqa: F401
from interp.heads import causal  # noqa: F401 (sink_need, retrieval_effect, anchor_effect)

# isort: on
from interp.heads.base import REGISTRY, DetectorResult, detector_names, get_detector, register

__all__ = ["REGISTRY", "DetectorResult", "detector_names", "get_detector", "register"]
