"""Saving detector results in a run folder and reusing them when their inputs match.

``<run>/detectors/<name>.parquet`` holds the per-head table; each extra table goes to
``<name>.<extra>.parquet``; the table's Parquet metadata holds the fingerprint (model, detector,
options, code version) and the detector's ``inputs`` dict.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from interp.heads.base import DetectorResult
from interp.report import read_table_metadata, write_table

STORE_VERSION = 3  # bump when a detector's tables change


def fingerprint(model_name: str, detector: str, options: dict[str, Any]) -> str:
    text = json.dumps([model_name, detector, options, STORE_VERSION], sort_keys=True, default=str)
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
