"""The bundled prompt set, prompt files (one prompt per line) and task prompt sources.

Task prompts (a sweep's ``task: ioi``) come from packages built on interp (``circuits``), found
through the ``interp.prompt_sources`` entry point group: interp never imports them itself, so
dependencies point one way (``circuits`` -> ``interp``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path
from typing import Any

from interp.errors import InputError


def default_prompts_file() -> Path:
    return Path(str(files("interp") / "data" / "scan_prompts.txt"))


MAX_PROMPT_CHARS = 200_000  # ~50k tokens: more than any supported context
MAX_FILE_BYTES = 64 * 2**20


def load_prompts(path: Path | None = None) -> list[str]:
    """One prompt per non-empty line; the two characters ``\\n`` stand for a newline."""
    from interp.checks import read_text

    path = Path(path) if path else default_prompts_file()
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(
            f"prompt file {path} is {path.stat().st_size / 2**20:.0f} MiB; a prompt file holds "
            f"at most {MAX_FILE_BYTES // 2**20} MiB of prompts (split it, or use a sweep)"
        )
    text = read_text(path, "prompt file")
    prompts = [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]
    long = next((i for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS), None)
    if long is not None:
        raise InputError(
            f"prompt {long + 1} of {path} has {len(prompts[long]):,} characters; a prompt holds "
            f"at most {MAX_PROMPT_CHARS:,} (far beyond any context the models read)"
        )
    if not prompts:
        raise InputError(f"prompt file {path} has no prompts (one prompt per line)")
    return prompts


def model_prompts_file(model: Any) -> Path | None:
    """The ``prompts.txt`` a model folder ships (``interp train-toy`` writes one: the task's own
    sequences), or None. Detectors with ``inputs="model_prompts"`` and the dashboard read it."""
    own = Path(str(model.cfg.model_name)) / "prompts.txt"
    return own if own.is_file() else None


PROMPT_SOURCES = "interp.prompt_sources"


def prompt_source(kind: str) -> Callable[[Any, str, int], list[str]]:
    """The registered ``(model, name, n) -> prompts`` function of ``kind`` (e.g. ``task``)."""
    found = [ep for ep in entry_points(group=PROMPT_SOURCES) if ep.name == kind]
    if not found:
        raise InputError(
            f"no {kind!r} prompt source is installed (entry point group {PROMPT_SOURCES}); "
            "install the project with `pip install -e .` so its circuits package registers it"
        )
    return found[0].load()
