"""docs/extending.md's detector example, run as written: registered by executing the document's
code block, seen by the scan (run folder table, summary line, manifest config), by ``--set``-style
options with their declared ranges, and by the dashboard's tables (merged scores and results
read back from the run folder, and the fast detectors computed on load). The registry is
restored afterwards."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


@pytest.fixture()
def diagonal():
    from interp.heads import REGISTRY

    before = dict(REGISTRY)
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    module = types.ModuleType("extending_example")  # dataclasses look their module up
    sys.modules[module.__name__] = module
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # the document's own code
    yield module.DiagonalDetector
    REGISTRY.clear()
    REGISTRY.update(before)
    del sys.modules[module.__name__]


def test_a_new_detector_is_seen_everywhere(diagonal, tiny, tmp_path, monkeypatch):
    import dashboards.tables as tables
    from dashboards.tables import read_results, read_run
    from interp.errors import InputError
    from interp.heads import detector_names, get_detector
    from interp.inputs.text import all_patterns, text_samples
    from interp.runs.scan import scan

    assert "diagonal" in detector_names(dashboard=True, interventional=False)
    out = tmp_path / "run"
    result = scan(tiny, out, detectors=["sink", "diagonal"], progress=False)
    table = result.detectors["diagonal"].table
    # the score is what the docstring says: mean A[t, t], recomputed densely here
    batch = text_samples(tiny, n_tokens=32)
    pats = all_patterns(tiny, batch)
    want = pats.diagonal(dim1=-2, dim2=-1).mean((1, 3)).reshape(-1)
    torch.testing.assert_close(torch.tensor(table.score.to_numpy()), want.double(), atol=1e-6,
                               rtol=0)  # fmt: skip
    assert (out / "detectors" / "diagonal.parquet").is_file()
    assert "Self-attending heads" in (out / "summary.md").read_text()
    results = read_results(out)
    assert results["diagonal"].table.score.tolist() == table.score.tolist()
    scores, manifest = read_run(out)
    assert "diagonal" in scores.columns and manifest["detectors"]["diagonal"]["config"] == {
        "n_tokens": 32, "threshold": 0.5}  # fmt: skip
    with pytest.raises(InputError, match="must be a finite number in"):
        get_detector("diagonal").run(tiny, threshold=2.0)
    # the dashboard computes the fast detectors on load: the new one among them
    monkeypatch.setattr(tables, "FAST_DETECTORS", tuple(detector_names(dashboard=True)))
    kept: dict = {}
    merged = tables.compute_scores(tiny, keep=kept)
    assert "diagonal" in kept and "diagonal" in merged.columns
