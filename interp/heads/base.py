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
    name: ClassVar[str]

    def run(self, model: TransformerBridge, **options: Any) -> DetectorResult: ...


REGISTRY: dict[str, Callable[[], Detector]] = {}


def register(cls):
    """Class decorator: make a detector available by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


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
