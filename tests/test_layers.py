"""Dependencies point one way.

- The library ``interp`` never imports ``circuits`` or ``dashboards`` (only the command line,
  ``interp/cli/``, may, inside its commands).
- Inside ``interp``, each package imports only packages of its own layer or below (docs/design.md,
  "Layers"): the detectors (``interp/heads/``) import nothing above themselves: not the runs,
  the sweeps, the calibration or the command line. Inputs and statistics sit below the detectors.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each package of interp may NOT import (every package above it).
ABOVE = {
    "heads": (
        "interp.runs",
        "interp.sweep",
        "interp.cli",
        "interp.calibration",
        "interp.calibration_search",
        "interp.calibration_scoring",
        "interp.calibration_stats",
        "interp.calibration_data",
    ),
    "inputs": (
        "interp.heads",
        "interp.runs",
        "interp.sweep",
        "interp.cli",
        "interp.calibration",
        "interp.calibration_search",
        "interp.calibration_scoring",
        "interp.calibration_stats",
        "interp.calibration_data",
    ),
    "stats": (
        "interp.heads",
        "interp.inputs",
        "interp.runs",
        "interp.sweep",
        "interp.cli",
        "interp.calibration",
        "interp.calibration_search",
        "interp.calibration_scoring",
        "interp.calibration_stats",
        "interp.calibration_data",
    ),
    "runs": ("interp.sweep", "interp.cli"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
            if node.module == "interp":  # ``from interp import runs``
                out += [(node.lineno, f"interp.{a.name}") for a in node.names]
    return out


def test_interp_does_not_import_the_packages_built_on_it():
    offenders = []
    for path in sorted((ROOT / "interp").rglob("*.py")):
        if path.relative_to(ROOT / "interp").parts[0] == "cli":  # the command line package
            continue
        for line, name in _imports(path):
            if name.split(".")[0] in ("circuits", "dashboards"):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert offenders == []


def test_each_package_of_interp_imports_nothing_above_itself():
    offenders = []
    for package, above in ABOVE.items():
        for path in sorted((ROOT / "interp" / package).rglob("*.py")):
            for line, name in _imports(path):
                if any(name == a or name.startswith(a + ".") for a in above):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert offenders == []


def test_the_layer_rule_sees_a_back_up_import(tmp_path):
    """The check itself can fail: the import that ``heads/validate.py`` once made is caught."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from interp.runs.folder import RunFolder\n")
    assert [n for _, n in _imports(bad) if n.startswith(ABOVE["heads"][0])] == [
        "interp.runs.folder"
    ]


def _module_imports(folder: Path, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (a folder) -> the modules of ``package`` it imports, at the top
    or inside a function (a lazy import is still an edge of the circle)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
                deps |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith(package)}
        found[name] = deps
    return {m: {d for d in deps if d in found and d != m} for m, deps in found.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    circles, done = [], set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                circles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        walk(start, [start])
    return circles


def test_circuits_has_no_import_circle():
    """``circuits/`` modules import each other one way (issue 26: planted <-> planted_sinks and
    tasks/base <-> tasks/generators were circles, hidden in function-level imports)."""
    assert _circles(_module_imports(ROOT / "circuits", "circuits")) == []


def test_the_circle_check_sees_a_circle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n")
    assert _circles(_module_imports(pkg, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]
