"""Writing run folders: Parquet tables (atomic), a JSON manifest, and layer x head heatmaps."""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from interp.errors import InterpError


def _fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> Path:
    """``write(tmp)`` into a temp file beside ``path``, fsync it, rename it over ``path`` and
    fsync the folder: after a crash ``path`` is the old file or the whole new one."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give results normal permissions
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # one line, not a traceback
            raise InterpError(
                f"cannot write {path}: {e.strerror}; free some space (or give another --out) "
                "and run the command again: finished results are kept and reused"
            ) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_table(df: pd.DataFrame, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``df`` as Parquet atomically (temp file + rename); ``metadata`` goes in the schema."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"interp"] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_table_metadata(path: Path) -> dict[str, Any]:
    """The ``metadata`` dict stored by ``write_table`` (empty if none)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[b"interp"]) if b"interp" in meta else {}


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` atomically (temp file + rename)."""
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_json(obj: Any, path: Path) -> Path:
    text = json.dumps(obj, indent=2, default=str)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def versions() -> dict[str, str]:
    """Versions of the packages that determine results."""
    out = {"python": platform.python_version()}
    for pkg in ("interp", "torch", "transformers", "transformer-lens", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def heatmap_grid(df: pd.DataFrame, columns: Sequence[str], path: Path, title: str) -> Path:
    """One layer x head heatmap per score column, saved as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n_heads = int(df["layer"].max()) + 1, int(df["head"].max()) + 1
    fig, axes = plt.subplots(
        1,
        len(columns),
        figsize=(2.2 + 1.6 * len(columns) * max(1, n_heads / 6), 0.25 * n_layers + 2),
    )
    axes = np.atleast_1d(axes)
    for ax, col in zip(axes, columns, strict=True):
        grid = np.full((n_layers, n_heads), np.nan)
        grid[df["layer"].to_numpy(), df["head"].to_numpy()] = df[col].to_numpy()
        im = ax.imshow(grid, aspect="auto", cmap="viridis", origin="upper")
        ax.set_title(col, fontsize=9)
        ax.set_xticks(range(n_heads))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def save_png(fig, path: Path) -> Path:
    """Lay out, write atomically (PNG, 110 dpi) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return Path(path)
