"""The results of a sweep on disk: a Parquet dataset, shard markers and a manifest.

    OUT/data/model=<label>/detector=<name>/<shard id>.parquet   # hive-partitioned dataset
    OUT/shards/<shard id>.json          # written LAST: the shard is complete
    OUT/shards/<shard id>.failed.json   # the shard failed after its retries (error inside)
    OUT/manifest.json                   # config, shard counts, engine, timings, versions

Every file is written to a temporary name and renamed (atomic on one file system), so a killed
sweep leaves either a complete shard or none; a resumed sweep recomputes only shards without a
marker. ``read_dataset`` returns one table per detector with ``model`` and ``detector`` columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from interp.report import atomic_write, write_json
from interp.sweep.shards import Shard


def data_dir(out: Path) -> Path:
    return Path(out) / "data"


def marker(out: Path, shard: Shard, failed: bool = False) -> Path:
    return Path(out) / "shards" / f"{shard.id}{'.failed' if failed else ''}.json"


def is_done(out: Path, shard: Shard) -> bool:
    return marker(out, shard).is_file()


def write_shard(out: Path, shard: Shard, tables: dict[str, pd.DataFrame], info: dict) -> None:
    """Each detector's table, then the marker (the shard counts as done only once it exists)."""
    files = []
    for name, df in tables.items():
        path = data_dir(out) / f"model={shard.label}" / f"detector={name}" / f"{shard.id}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = df.drop(columns=[c for c in ("model", "detector") if c in df])  # partition keys
        atomic_write(path, lambda tmp, frame=frame: frame.to_parquet(tmp, index=False))
        files.append(str(path.relative_to(out)))
    marker(out, shard, failed=True).unlink(missing_ok=True)
    write_json({"shard": shard.id, "files": files, **info}, marker(out, shard))


def write_failure(out: Path, shard: Shard, error: str, attempts: int) -> None:
    write_json({"shard": shard.id, "error": error, "attempts": attempts},
               marker(out, shard, failed=True))  # fmt: skip


def failures(out: Path) -> list[dict]:
    folder = Path(out) / "shards"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.failed.json"))]


def read_dataset(out: Path) -> dict[str, pd.DataFrame]:
    """{detector: table} over every model (columns include ``model``).

    Read per detector (each has its own columns; one dataset over all of them would take the
    first file's schema). Any Parquet tool reads the same layout with hive partitioning.
    """
    root = data_dir(out)
    groups: dict[str, list[pd.DataFrame]] = {}
    for path in sorted(root.glob("model=*/detector=*/*.parquet")):
        model = path.parent.parent.name.removeprefix("model=")
        detector = path.parent.name.removeprefix("detector=")
        groups.setdefault(detector, []).append(pd.read_parquet(path).assign(model=model))
    keys = ["model", "prompt_set", "length", "prompt", "layer", "head"]
    return {
        name: pd.concat(frames, ignore_index=True).sort_values(keys).reset_index(drop=True)
        for name, frames in groups.items()
    }
