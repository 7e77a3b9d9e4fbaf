"""The user cache folder, and atomic writes of whole folders into it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """Folder where converted models are kept.

    ``$INTERP_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/interp``, else ``~/.cache/interp``.
    """
    env = os.environ.get("INTERP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "interp"


def write_folder_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` by filling a temporary sibling folder and renaming it into place.

    A crash or Ctrl-C mid-way leaves no half-written ``final``: a later call starts over.
    If another process finished the same folder first, its copy is kept and ours dropped.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
