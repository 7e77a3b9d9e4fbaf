"""The bundled prompt set and prompt files (one prompt per line)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from interp.errors import InputError


def default_prompts_file() -> Path:
    return Path(str(files("interp") / "data" / "scan_prompts.txt"))


def load_prompts(path: Path | None = None) -> list[str]:
    """One prompt per non-empty line; the two characters ``\\n`` stand for a newline."""
    path = Path(path) if path else default_prompts_file()
    if not path.is_file():
        raise InputError(f"prompt file {path} does not exist")
    prompts = [line.replace("\\n", "\n") for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"prompt file {path} has no prompts (one prompt per line)")
    return prompts
