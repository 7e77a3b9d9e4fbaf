"""A module of this repository as it was at a git revision: the "before" of a speed-up,
measured in the same run as the "after" (``attention_stats.py --before``,
``dashboard_switch.py --before``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[1]


def module_at(rev: str, path: str, name: str) -> ModuleType:
    """``path`` (relative to the repository root) at ``rev``, imported as module ``name``."""
    cmd = ["git", "show", f"{rev}:{path}"]
    src = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(name, f.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module
