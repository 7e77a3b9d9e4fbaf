"""Causal validation: head draws, the loss metric against a direct cross-entropy, and the
validation table on the tiny model; the detector store round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from interp.heads import get_detector
from interp.heads.base import DetectorResult, head_frame
from interp.runs.folder import RunFolder
from interp.runs.store import fingerprint
from interp.runs.validate import (
    control_exclusion,
    mean_loss,
    random_heads,
    run_validation,
    same_layer_heads,
    validate,
)
from interp.tokens import tokenize


def test_random_draws_avoid_top_and_match_layers():
    rng = np.random.default_rng(0)
    top = [(0, 0), (0, 1), (2, 3)]
    rest = [(la, h) for la in range(3) for h in range(4) if (la, h) not in top]
    for _ in range(20):
        r = random_heads(rest, 3, rng)
        assert len(set(r)) == 3 and not set(r) & set(top)
        s = same_layer_heads(top, rest, rng)
        assert len(set(s)) == 3 and not set(s) & set(top)
        assert sorted(la for la, _ in s) == [0, 0, 2]
    # layer 1 has no heads left outside the top: fall back to any other head
    s = same_layer_heads([(1, 0)], [(0, 0), (2, 1)], rng)
    assert s[0] in [(0, 0), (2, 1)]


def test_random_control_excludes_the_scaled_top_100():
    """Official: random heads come from outside the top-100 of 1024 heads; scaled and >= K."""
    assert control_exclusion(1024, 50) == 100
    assert control_exclusion(270, 14) == 27  # SmolLM2: 30 x 9 heads
    assert control_exclusion(270, 40) == 40
    assert control_exclusion(8, 1) == 1


def test_mean_loss_matches_cross_entropy(tiny):
    prompts = ["hello there friend", "abc"]
    batch = tokenize(tiny, prompts)
    got = mean_loss(tiny, batch, [])
    hf = tiny.original_model
    total, count = 0.0, 0
    for p in prompts:  # unpadded, one at a time, through the HF model directly
        ids = torch.tensor([tiny.tokenizer(p)["input_ids"]])
        with torch.no_grad():
            logits = hf(ids).logits[0, :-1]
        ce = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
        total, count = total + ce.item(), count + ids.shape[1] - 1
    assert got == pytest.approx(total / count, rel=1e-5)


def test_validate_sink_on_tiny(tiny):
    res = get_detector("sink").run(tiny, n_tokens=16)
    v = validate(tiny, res, k=2, n_draws=3, seed=1, progress=False)
    t = v.table
    assert t.condition.tolist() == ["none", "top"] + ["random"] * 3 + ["random_same_layers"] * 3
    assert t["drop"].iloc[0] == 0 and (t.k.iloc[1:] == 2).all()
    top = res.table.sort_values("score", ascending=False).head(2)
    assert t.heads.iloc[1] == " ".join(
        f"L{la}.H{h}" for la, h in sorted(zip(top.layer, top["head"], strict=True))
    )
    for heads in t.heads.iloc[2:]:
        assert not set(heads.split()) & set(t.heads.iloc[1].split())
    # drop = masked loss - baseline loss (loss: higher is worse)
    np.testing.assert_allclose(t["drop"], t.text_loss - t.text_loss.iloc[0], rtol=1e-6)
    assert v.summary["random_drop_std"] >= 0 and v.summary["k"] == 2
    assert v.summary["random_sets_possible"] == 15  # C(6, 2): 8 heads, the top 2 excluded
    assert "control_warning" not in v.summary
    # the control's p-value, recounted: (1 + random drops >= the top drop) / (draws + 1)
    top, rnd = t["drop"].iloc[1], t[t.condition == "random"]["drop"]
    assert v.summary["random_p"] == pytest.approx((1 + (rnd >= top).sum()) / 4)


def test_control_p_value_on_hand_built_drops():
    from interp.runs.validate import VALIDATION_DRAWS, control_p

    assert control_p(1.0, np.array([0.1, 0.2, 0.3])) == pytest.approx(1 / 4)
    assert control_p(0.2, np.array([0.1, 0.2, 0.3])) == pytest.approx(3 / 4)  # ties count
    assert control_p(9.0, np.zeros(VALIDATION_DRAWS)) < 0.05  # the default can reach 0.05
    assert control_p(9.0, np.zeros(5)) > 0.05  # 5 draws could not


def test_a_random_control_that_cannot_vary_is_flagged(tiny):
    """With 8 heads and k = 4 only the 4 heads outside the top remain: every random draw is
    the same set (the ground-truth benchmark met this), and the summary says so."""
    res = get_detector("sink").run(tiny, n_tokens=16)
    v = validate(tiny, res, k=4, n_draws=3, seed=1, progress=False)
    random_sets = set(v.table[v.table.condition == "random"].heads)
    assert len(random_sets) == 1 and v.summary["random_sets_possible"] == 1
    assert "cannot vary" in v.summary["control_warning"]


def test_run_validation_writes_files_and_reuses_detector(tiny, tmp_path):
    v, paths = run_validation(tiny, "induction", tmp_path, k=1, n_draws=2, progress=False)
    assert all(p.is_file() for p in paths)
    stored = tmp_path / "detectors" / "induction.parquet"
    mtime = stored.stat().st_mtime_ns
    run_validation(tiny, "induction", tmp_path, k=1, n_draws=2, progress=False)
    assert stored.stat().st_mtime_ns == mtime  # the stored detector table was reused
    summary = json.loads((tmp_path / "validation" / "induction.json").read_text())
    assert summary["metric"] == "induction_loss" and summary["k"] == 1


def test_validation_rejects_a_detector_without_a_metric(tiny, tmp_path):
    from interp.errors import InputError

    with pytest.raises(InputError, match="no validation metric"):
        run_validation(tiny, "previous_token", tmp_path)


def test_store_round_trip_and_staleness(tmp_path):
    r = DetectorResult(
        "x", head_frame(torch.rand(2, 3), 0.5), {"seed": 3}, {"extra": pd.DataFrame({"a": [1]})}
    )
    fp = fingerprint("m", "x", {"o": 1})
    folder = RunFolder(tmp_path)
    folder.save_detector(r, fp)
    back = folder.load_detector("x", fp)
    pd.testing.assert_frame_equal(back.table, r.table)
    assert back.inputs == {"seed": 3} and list(back.extra) == ["extra"]
    assert folder.load_detector("x", fingerprint("m", "x", {"o": 2})) is None
    assert folder.load_detector("missing") is None
    folder.detector_path("x", "extra").unlink()  # an extra lost: the result is incomplete
    assert folder.load_detector("x", fp) is None
