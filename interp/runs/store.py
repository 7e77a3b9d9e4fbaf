"""Cache keys of detector tables (``interp.runs.folder.RunFolder`` stores and reuses them).

The fingerprint is the cache key of a table: the model, the detector, its EFFECTIVE configuration
(``DetectorSpec.as_dict``: its ``Config`` dataclass with the options given, every default included;
run-time arguments such as ``progress`` or ``workdir`` are not in it), every shared constant of
``interp.defaults``, the source of the detector's module and ``STORE_VERSION``. Changing a default
threshold, a window or the detector's code therefore recomputes the table instead of silently
reusing a stale one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from typing import Any

from interp import defaults
from interp.heads.base import DetectorSpec

STORE_VERSION = 4  # bump when a table's layout changes in code outside the detector's module


def _constants() -> dict[str, Any]:
    return {k: v for k, v in vars(defaults).items() if k.isupper()}


def source_hash(obj: Any) -> str:
    """Hash of the source of every interp module that defines ``obj``'s class or a base."""
    cls = obj if inspect.isclass(obj) else type(obj)
    names = sorted({c.__module__ for c in cls.__mro__ if c.__module__.startswith("interp")})
    text = "".join(inspect.getsource(sys.modules[n]) for n in names)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(model_name: str, detector: str, options: dict[str, Any], code: str = "") -> str:
    """Cache key of a table: model, detector, configuration, shared constants, code."""
    text = json.dumps(
        [model_name, detector, options, _constants(), code, STORE_VERSION],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def detector_fingerprint(model_name: str, spec: DetectorSpec) -> str:
    """The fingerprint of the tables of detector ``spec`` (scan and validate share it, so a
    validation reuses the scan's table exactly when it would be the same)."""
    return fingerprint(model_name, spec.name, spec.as_dict(), source_hash(spec.detector))
