"""Dependencies point one way: the library ``interp`` never imports ``circuits`` or
``dashboards`` (only the command line, ``interp/cli/``, may, inside its commands)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_interp_does_not_import_the_packages_built_on_it():
    offenders = []
    for path in sorted((ROOT / "interp").rglob("*.py")):
        if path.relative_to(ROOT / "interp").parts[0] == "cli":  # the command line package
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("circuits", "dashboards"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []
