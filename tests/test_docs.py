"""The project stands alone: no tracked file cites a path outside the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()


def test_no_reference_outside_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".yaml", ".txt"} or path == THIS:
            continue
        text = path.read_text(errors="replace")
        if "../shared" in text or "shared/methods.md" in text:
            outside.append(name)
    assert outside == [], f"these files cite a path outside the repository: {outside}"
    assert (ROOT / "docs" / "methods.md").is_file()
