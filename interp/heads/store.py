"""Saving detector results in a run folder and reusing them when their inputs match.

``<run>/detectors/<name>.parquet`` holds the per-head table; each extra table goes to
``<name>.<extra>.parquet``; the table's Parquet metadata holds the fingerprint and the detector's
``inputs`` dict.

The fingerprint is the cache key of a table: the model, the detector, its EFFECTIVE configuration
(``detector_config``: every keyword default of its ``run`` / ``make_inputs`` overlaid with the
options given), every shared constant of ``interp.defaults``, the source of the detector's module
and ``STORE_VERSION``. Changing a default threshold, a window or the detector's code therefore
recomputes the table instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from interp import defaults
from interp.heads.base import DetectorResult
from interp.report import read_table_metadata, write_table

STORE_VERSION = 3  # bump when a table's layout changes in code outside the detector's module
#: run-time arguments that change how a detector runs, not what it computes
NOT_CONFIG = frozenset({"self", "model", "progress", "workdir"})


def _constants() -> dict[str, Any]:
    return {k: v for k, v in vars(defaults).items() if k.isupper()}


def detector_config(detector: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Every keyword default of the detector's ``run`` (and ``make_inputs``) with ``options``
    applied: the configuration a table depends on."""
    config: dict[str, Any] = {}
    for fn in (getattr(detector, "make_inputs", None), detector.run):
        if fn is None:
            continue
        for p in inspect.signature(fn).parameters.values():
            if p.name not in NOT_CONFIG and p.default is not inspect.Parameter.empty:
                config[p.name] = p.default
    config.update(options)
    return config


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


def table_path(folder: Path, name: str, extra: str | None = None) -> Path:
    return Path(folder) / (f"{name}.{extra}.parquet" if extra else f"{name}.parquet")


def save_result(folder: Path, result: DetectorResult, fp: str) -> Path:
    """Write extras first and the main table last, so a present main table means complete."""
    for extra, df in result.extra.items():
        write_table(df, table_path(folder, result.name, extra), {"fingerprint": fp})
    meta = {"fingerprint": fp, "inputs": result.inputs, "extras": sorted(result.extra)}
    return write_table(result.table, table_path(folder, result.name), meta)


def load_result(folder: Path, name: str, fp: str | None = None) -> DetectorResult | None:
    """The stored result of detector ``name`` (None if absent or, given ``fp``, stale)."""
    path = table_path(folder, name)
    if not path.is_file():
        return None
    meta = read_table_metadata(path)
    if fp is not None and meta.get("fingerprint") != fp:
        return None
    extras = {}
    for extra in meta.get("extras", []):
        p = table_path(folder, name, extra)
        if not p.is_file():
            return None
        extras[extra] = pd.read_parquet(p)
    return DetectorResult(name, pd.read_parquet(path), meta.get("inputs", {}), extras)


def detector_fingerprint(model_name: str, name: str, options: dict[str, Any]) -> str:
    """The fingerprint of detector ``name``'s tables run with ``options`` (scan and validate
    share it, so a validation reuses the scan's table exactly when it would be the same)."""
    from interp.heads import get_detector

    detector = get_detector(name)
    return fingerprint(model_name, name, detector_config(detector, options), source_hash(detector))
