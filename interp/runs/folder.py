"""The run folder: the one owner of its paths, tables, manifest and plots.

``interp scan`` writes a whole one, ``interp validate`` adds ``validation/``, a sweep writes one
per model (``OUT/runs/<model>/``), and the dashboard and ``interp families`` read them::

    manifest.json               model facts; inputs, options and timings of every table; versions
    head_stats.parquet          per-head statistics (+ head_stats.png)
    detectors/<name>.parquet    a detector's per-head table (+ <name>.<extra>.parquet); its Parquet
                                metadata holds the fingerprint (cache key) and the inputs
    detectors.png / .html       layer x head heatmaps of every detector score
    summary.md                  what was found, in words
    validation/<detector>.*     causal validation table, summary JSON and bar chart
    cache/<detector>/           resumable work (the retrieval detector's finished needle tests)
    .lock                       held by the one process writing the folder (``RunFolder.lock``)

Every write is atomic (temp file + rename), and a detector's main table is written after its
extras, so a present main table means a complete result. A table is reused only when its stored
fingerprint equals the one its configuration gives now (``interp.runs.store``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from interp.errors import InputError
from interp.heads.base import DetectorResult, DetectorSpec
from interp.report import read_table_metadata, write_json, write_table, write_text


class RunFolder:
    """Paths and reads/writes of one run folder (``root`` need not exist until written)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(str(root)).expanduser()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def head_stats_path(self) -> Path:
        return self.root / "head_stats.parquet"

    @property
    def detectors_dir(self) -> Path:
        return self.root / "detectors"

    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    def detector_path(self, name: str, extra: str | None = None) -> Path:
        return self.detectors_dir / (f"{name}.{extra}.parquet" if extra else f"{name}.parquet")

    def cache(self, name: str) -> Path:
        """Where detector ``name`` keeps resumable work."""
        return self.root / "cache" / name

    def lock(self) -> contextlib.AbstractContextManager[Path]:
        """Hold the folder for one writer (``folder_lock``)."""
        return folder_lock(self.root)

    # -- per-head statistics --------------------------------------------------------------------

    def write_head_stats(self, df: pd.DataFrame, metadata: dict[str, Any] | None = None) -> Path:
        return write_table(df, self.head_stats_path, metadata)

    def write_head_stats_plot(self, df: pd.DataFrame, title: str) -> Path:
        """``head_stats.png``: one heatmap per head statistic (``interp.stats.heads.SCORES``)."""
        from interp.report import heatmap_grid
        from interp.stats.heads import SCORES

        return heatmap_grid(df, SCORES, self.root / "head_stats.png", title)

    def table_paths(self, results: dict[str, DetectorResult]) -> dict[str, Any]:
        """The manifest's ``tables`` (paths relative to the root) and each detector's extra
        tables, as this folder lays them out."""
        rel = lambda p: str(p.relative_to(self.root))  # noqa: E731
        return {
            "tables": {
                "head_stats": rel(self.head_stats_path),
                **{n: rel(self.detector_path(n)) for n in results},
            },
            "extra_tables": {
                n: {e: rel(self.detector_path(n, e)) for e in r.extra} for n, r in results.items()
            },
        }

    def read_head_stats(self, fingerprint: str | None = None) -> pd.DataFrame | None:
        """The statistics table (None if absent or, given ``fingerprint``, stale)."""
        path = self.head_stats_path
        if not path.is_file():
            return None
        try:
            if fingerprint is not None:  # the metadata is read only to compare fingerprints
                if read_table_metadata(path).get("fingerprint") != fingerprint:
                    return None
            return pd.read_parquet(path)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            return _unreadable(path, e)

    # -- detector tables ------------------------------------------------------------------------

    def save_detector(self, result: DetectorResult, fingerprint: str | None = None) -> Path:
        """Extras first, the main table last (present main table = complete result)."""
        for extra, df in result.extra.items():
            write_table(df, self.detector_path(result.name, extra), {"fingerprint": fingerprint})
        meta = {"fingerprint": fingerprint, "inputs": result.inputs, "extras": sorted(result.extra)}
        return write_table(result.table, self.detector_path(result.name), meta)

    def load_detector(self, name: str, fingerprint: str | None = None) -> DetectorResult | None:
        """The stored result of detector ``name`` (None if absent, incomplete or, given
        ``fingerprint``, computed with another configuration)."""
        path = self.detector_path(name)
        if not path.is_file():
            return None
        try:
            meta = read_table_metadata(path)
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return None
            extras = {}
            for extra in meta.get("extras", []):
                p = self.detector_path(name, extra)
                if not p.is_file():
                    return None
                extras[extra] = pd.read_parquet(p)
            return DetectorResult(name, pd.read_parquet(path), meta.get("inputs", {}), extras)
        except (OSError, ValueError) as e:  # a truncated or corrupt file: recompute it
            return _unreadable(path, e)

    def run_detector(
        self, model: Any, spec: DetectorSpec, *, progress: bool = True
    ) -> tuple[DetectorResult, bool, float]:
        """The result of detector ``spec``: the stored table when its fingerprint matches,
        else computed with the spec's config (resumable detectors keep their work under
        ``cache/<name>``) and stored. Returns (result, reused, seconds)."""
        from interp.models.info import model_key
        from interp.runs.store import detector_fingerprint

        detector = spec.detector
        fp = detector_fingerprint(model_key(model), spec)
        t0 = time.perf_counter()
        result = self.load_detector(spec.name, fp)
        reused = result is not None
        if result is None:
            extra: dict[str, Any] = {}
            if detector.resumable:
                extra = {"workdir": self.cache(spec.name), "progress": progress}
            result = detector.run(model, spec.config, **extra)
            self.save_detector(result, fp)
        return result, reused, time.perf_counter() - t0

    def detector_tables(self) -> dict[str, pd.DataFrame]:
        """Every detector table the manifest lists that exists, by name."""
        names = self.manifest().get("detectors", {})
        paths = {n: self.detector_path(n) for n in names}
        return {n: pd.read_parquet(p) for n, p in paths.items() if p.is_file()}

    def require_detector(self, name: str, hint: str) -> DetectorResult:
        """Detector ``name``'s stored result, or a clear error that says how to make it."""
        result = self.load_detector(name)
        if result is None:
            raise InputError(f"{self.detector_path(name)} does not exist or is incomplete: {hint}")
        return result

    # -- manifest, summary, plots ---------------------------------------------------------------

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        return write_json(manifest, self.manifest_path)

    def manifest(self) -> dict[str, Any]:
        """The manifest; a clear error when this is not a run folder."""
        if not self.root.is_dir():
            raise InputError(
                f"run folder {self.root} does not exist; give a folder written by interp scan"
            )
        if not self.manifest_path.is_file():
            raise InputError(
                f"{self.root} has no manifest.json: it is not a run folder written by `interp "
                f"scan` (run `interp scan MODEL --out {self.root}` first)"
            )
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {self.manifest_path}: {e}") from e

    def write_summary(self, text: str) -> Path:
        return write_text(text, self.root / "summary.md")

    def write_detector_plots(self, results: dict[str, DetectorResult], title: str) -> list[Path]:
        """``detectors.png`` (matplotlib) and ``detectors.html`` (plotly, offline)."""
        from interp.runs.plots import detector_heatmaps_html, detector_heatmaps_png

        return [
            detector_heatmaps_png(results, self.root / "detectors.png", title),
            detector_heatmaps_html(results, self.root / "detectors.html", title),
        ]

    def write_validation(
        self, detector: str, table: pd.DataFrame, summary: dict[str, Any], model_name: str
    ) -> list[Path]:
        """``validation/<detector>.parquet`` (metadata: the summary) and ``.json`` (the summary
        and the model)."""
        folder = self.validation_dir
        return [
            write_table(table, folder / f"{detector}.parquet", summary),
            write_json({**summary, "model": model_name}, folder / f"{detector}.json"),
        ]

    def scores(self) -> tuple[pd.DataFrame | None, dict[str, pd.DataFrame], dict[str, Any]]:
        """(head statistics or None, detector tables, manifest) for readers such as the
        dashboard; a clear error when the folder holds neither kind of table."""
        manifest = self.manifest()
        try:
            stats = self.read_head_stats()
            tables = self.detector_tables()
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read the run folder {self.root}: {e}") from e
        if stats is None and not tables:
            raise InputError(f"{self.root} holds no head_stats.parquet and no detectors/*.parquet")
        return stats, tables, manifest


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[Path]:
    """Hold ``root`` for one writer: an advisory ``flock`` on ``root/.lock``, released when the
    process ends, even if killed. A second writer gets a clear error at once instead of both
    recomputing everything into the same files."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".lock"
    try:  # never through a symlink: a link would have us write into the file it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if path.is_symlink():
            raise InputError(
                f"{path} is a symbolic link; remove it (a run folder's lock is a plain file)"
            ) from None
        raise InputError(f"cannot create the lock file {path}: {e.strerror}") from None
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise InputError(
                f"{root} is in use by {holder}; wait for it to finish or give another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"interp pid {os.getpid()}")
        f.flush()
        try:
            yield root
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _unreadable(path: Path, error: Exception) -> Any:
    """A stored table that cannot be read counts as absent: it is recomputed and rewritten."""
    warnings.warn(
        f"{path} cannot be read ({error}); treating it as absent (a scan recomputes it)",
        stacklevel=3,
    )
    return None
