"""The examples a user copies run, and what they print agrees with the library (quickstart:
tests/test_cli.py). Small settings on the tiny model: the point is the example's code path and
its printed claims, not the figures of a real model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_detect_heads_prints_what_the_detectors_find(capsys, monkeypatch, tmp_path):
    import interp
    from interp.heads import get_detector

    monkeypatch.chdir(tmp_path)
    got = _module("detect_heads").main("tiny", with_retrieval=False, k=2)
    printed = capsys.readouterr().out
    model = interp.load_model("tiny")
    induction = get_detector("induction").run(model)
    assert f"induction heads: {induction.labelled()}" in printed
    sink = get_detector("sink").run(model)
    assert f"sink metric (Gu et al.): {sink.inputs['sink_metric']:.1%}" in printed
    table = got["validation"].table  # what the example prints: none, top-k, 5 + 5 controls
    assert list(table["condition"]) == ["none", "top"] + ["random"] * 5 + ["random_same_layers"] * 5
    top = table[table["condition"] == "top"].iloc[0]
    ranked = induction.table.sort_values("score", ascending=False)
    best = sorted(zip(ranked.layer.tolist()[:2], ranked["head"].tolist()[:2], strict=True))
    assert top["k"] == 2 and top["heads"] == " ".join(f"L{la}.H{h}" for la, h in best)
    anchors = got["anchors"]
    assert {"position", "token", "fai", "anchor"} <= set(anchors.columns)


def test_expressive_vs_dot_table_is_the_runs_metrics(capsys, tmp_path):
    import json

    _module("expressive_vs_dot").main(
        task="recall", complexities="1,2", seeds="0,1", steps=15, out=tmp_path
    )
    printed = capsys.readouterr().out
    folder = tmp_path / "recall"
    df = pd.read_parquet(folder / "results.parquet")
    assert len(df) == 2 * 2 * 2  # complexities x attentions x seeds
    for row in df.itertuples():  # each row is that run's own saved metrics
        metrics = json.loads((Path(row.folder) / "metrics.json").read_text())
        assert row.accuracy == pytest.approx(metrics["accuracy"])
    means = df.groupby(["complexity", "attention"])["accuracy"].mean().unstack()
    for c in (1, 2):  # the printed verdict is the table's means
        line = next(ln for ln in printed.splitlines() if ln.split()[:1] == [str(c)])
        assert f"{means.loc[c, 'dpa']:.3f}" in line and f"{means.loc[c, 'ea']:.3f}" in line
    assert (folder / "accuracy_vs_complexity.png").is_file() and (folder / "geometry.png").is_file()
