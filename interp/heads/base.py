"""Detector registry and the table every detector returns.

A new detector is one file in ``interp/heads/`` plus one ``@register`` line. Each returns a
``DetectorResult`` whose ``table`` has one row per (layer, head) with its score(s), the
threshold used, a boolean ``label`` and, in ``inputs``, what it was computed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError


@dataclass
class DetectorResult:
    """Per-head table (``layer``, ``head``, score columns, ``threshold``, ``label``) + extras."""

    name: str
    table: pd.DataFrame
    inputs: dict[str, Any]
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def labelled(self) -> list[tuple[int, int]]:
        """(layer, head) of every head whose ``label`` is true, best score first."""
        t = self.table[self.table.label].sort_values("score", ascending=False)
        return list(zip(t.layer.tolist(), t["head"].tolist(), strict=True))


@runtime_checkable
class Detector(Protocol):
    """What the registry knows of a detector; every place that lists detectors reads it."""

    name: ClassVar[str]
    causal_only: ClassVar[bool]  # defined for causal language models only (scan skips others)
    dashboard: ClassVar[bool]  # fast enough to compute when the dashboard loads a model
    per_prompt: ClassVar[bool]  # a sweep can score it on each prompt of any prompt set

    def run(self, model: TransformerBridge, **options: Any) -> DetectorResult: ...


#: name -> detector class, in registration order (the order of scans, summaries and plots)
REGISTRY: dict[str, Callable[[], Detector]] = {}
_CAPABILITIES = ("causal_only", "dashboard", "per_prompt")


def register(cls):
    """Class decorator: make a detector available by its ``name``. A second detector with the
    same name is an error; the class must declare its capabilities (``Detector``)."""
    old = REGISTRY.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"a detector named {cls.name!r} is already registered ({old.__qualname__})"
        )
    missing = [c for c in _CAPABILITIES if not isinstance(getattr(cls, c, None), bool)]
    if missing:
        raise TypeError(f"detector {cls.__qualname__} must declare {', '.join(missing)} (bool)")
    REGISTRY[cls.name] = cls
    return cls


def detector_names(
    *, causal: bool = True, dashboard: bool | None = None, per_prompt: bool | None = None
) -> list[str]:
    """Registered detector names, in registration order, filtered by capability: ``causal``
    False drops the causal-only ones; ``dashboard`` / ``per_prompt`` True keep only those."""
    return [
        name
        for name, cls in REGISTRY.items()
        if (causal or not cls.causal_only)
        and (dashboard is None or cls.dashboard == dashboard)
        and (per_prompt is None or cls.per_prompt == per_prompt)
    ]


def get_detector(name: str) -> Detector:
    if name not in REGISTRY:
        raise InputError(f"unknown detector {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]()


def head_frame(scores, threshold: float, **columns) -> pd.DataFrame:
    """Build the standard table from a [layer, head] ``scores`` tensor and extra columns."""
    n_layers, n_heads = scores.shape
    rows = {
        "layer": [layer for layer in range(n_layers) for _ in range(n_heads)],
        "head": [h for _ in range(n_layers) for h in range(n_heads)],
        "score": scores.reshape(-1).tolist(),
    }
    for k, v in columns.items():
        rows[k] = v.reshape(-1).tolist() if hasattr(v, "reshape") else v
    df = pd.DataFrame(rows)
    df["threshold"] = threshold
    df["label"] = df.score > threshold
    return df
