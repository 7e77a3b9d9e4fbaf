"""SAE discovery of head families: contrasts, head writes and the CLI (tiny model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from circuits.families import (
    Contrast,
    anchor_contrast,
    discover_family,
    head_writes,
    retrieval_contrast,
    sink_contrast,
    write_change,
)
from interp.cli import app
from interp.heads.anchor import W
from interp.heads.retrieval import make_tests


def test_head_writes_match_unpadded_attention_output(tiny):
    """Summed over heads, a head write at the readout equals the attention block's output there
    in an unpadded run of that example alone (padding in the batch changes nothing)."""
    seqs = [torch.tensor([5, 9, 13, 2, 7, 11]), torch.tensor([3, 4, 8])]
    c = Contrast(
        seqs, [torch.ones_like(s) for s in seqs],
        [torch.tensor([0, 0, 0.5, 0, 0, 0.5]), torch.tensor([0, 0, 1.0])], np.array([True, False]),
    )  # fmt: skip
    writes = head_writes(tiny, c, batch_size=2)  # [2, 8, d_model]
    for i, s in enumerate(seqs):
        with torch.no_grad():
            _, cache = tiny.run_with_cache(s[None], names_filter=lambda n: "attn.hook_out" in n)
        for la in range(2):
            expected = (c.readout[i][:, None] * cache[f"blocks.{la}.attn.hook_out"][0]).sum(0)
            got = writes[i, 4 * la : 4 * la + 4].sum(0)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_sink_contrast_hides_only_token_zero(tiny):
    c = sink_contrast(tiny)
    n = int(c.positive.sum())
    assert n == len(c.tokens) // 2
    for p, q in zip(range(n), range(n, 2 * n), strict=True):
        assert torch.equal(c.tokens[p], c.tokens[q])
        assert c.masks[p].all() and c.masks[q][0] == 0 and c.masks[q][1:].all()
        assert c.readout[q][0] == 0 and torch.isclose(c.readout[q].sum(), torch.tensor(1.0))


def test_anchor_contrast_changes_only_the_far_context(tiny):
    c = anchor_contrast(tiny, n=3)
    for p in range(3):
        a, b = c.tokens[p], c.tokens[3 + p]
        assert a[0] == b[0] and torch.equal(a[-W:], b[-W:])
        assert not torch.equal(a[1:-W], b[1:-W])
        assert c.readout[p][-1] == 1 and c.readout[p].sum() == 1


def test_retrieval_contrast_removes_the_needle(smol):
    tests = make_tests(smol, lengths=[256], depths=[50], needles=(0, 1))
    table = pd.DataFrame({"test": [t.key for t in tests], "rouge1_recall": [1.0, 0.2]})
    c = retrieval_contrast(smol, table)
    assert c.positive.tolist() == [True, False]  # only the answered test, then its negative
    t = tests[0]
    assert c.tokens[0].tolist() == t.ids
    assert c.tokens[1].tolist() == t.ids[: t.needle_start] + t.ids[t.needle_end :]


def _run_folder(tmp_path, family: str, labels: list[bool], groups: list[str] | None = None):
    d = tmp_path / "detectors"
    d.mkdir(parents=True)
    table = pd.DataFrame(
        {"layer": np.repeat([0, 1], 4), "head": np.tile(range(4), 2), "label": labels}
    )
    if groups is not None:
        table["group"] = groups
    table.to_parquet(d / f"{family}.parquet")
    return tmp_path


def test_discover_family_scores_only_the_analysed_heads(tiny, tmp_path):
    labels = [False, False, False, False, True, False, True, False]
    groups = ["", "", "", "", "global", "local", "global", "local"]
    run = _run_folder(tmp_path, "anchor", labels, groups)
    d = discover_family(tiny, "anchor", run, sae_epochs=20, progress=False)
    assert d.table.scored.tolist() == [g != "" for g in groups]
    assert d.summary["n_heads_scored"] == 4 and d.summary["n_detector_heads"] == 2
    # the AUC is over the analysed heads only: recomputed by scikit-learn on the table's columns
    t = d.table[d.table.scored]
    assert d.summary["roc_auc"] == pytest.approx(roc_auc_score(t.detector_label, t.sae_node_score))
    assert d.summary["roc_auc_write_change"] == pytest.approx(
        roc_auc_score(t.detector_label, t.write_change)
    )


def test_families_cli_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["families", "tiny", "--run", str(tmp_path), "--family", "sink"])
    assert r.exit_code == 2 and "interp scan" in r.output
    r = runner.invoke(app, ["families", "tiny", "--run", str(tmp_path), "--family", "nope"])
    assert r.exit_code == 2 and "unknown head families" in r.output
    run = _run_folder(tmp_path / "r", "sink", [True] * 3 + [False] * 5)
    out = tmp_path / "out"
    r = runner.invoke(
        app, ["families", "tiny", "--run", str(run), "--family", "sink", "--epochs", "5",
              "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (out / "sink.parquet").is_file() and (out / "families.png").is_file()


def test_write_change_on_a_hand_built_case():
    x = torch.zeros(4, 2, 3)  # 2 positives then their 2 negatives, 2 heads
    x[:, 0] = torch.tensor([[1.0, 0, 0], [0, 2, 0], [1, 0, 0], [0, 2, 0]])  # head 0: unchanged
    x[:, 1] = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 3, 0]])  # head 1 moves
    got = write_change(x, np.array([True, True, False, False]))
    # head 1: pair 1 |2| / (1 + 1) = 1, pair 2 |-2| / (1 + 3) = 0.5
    np.testing.assert_allclose(got, [0.0, 0.75])


def test_every_family_is_a_registered_detector():
    """The families' contrasts are keyed by detector name on the circuits side; a renamed or
    removed detector must not leave a contrast whose labels no longer exist."""
    from circuits.families import CONTRASTS, FAMILIES
    from interp.heads import REGISTRY

    assert set(CONTRASTS) == set(FAMILIES)
    assert set(FAMILIES) <= set(REGISTRY)


def test_family_evidence_scores_every_method_against_the_causal_reference(tiny, tmp_path):
    """With the sink detector's labels and the sink_need causal score in the run folder, the
    evidence holds every method (discrete-code SAE over 2 seeds, write change, the detector
    score, the causal estimate, the attention-output SAE over 2 SAE sets) against the causal
    reference (exact effect > threshold on the checked heads), each AUC equal to scikit-learn's
    on those heads, beside the four baselines."""
    from interp.heads import get_detector
    from interp.runs.folder import RunFolder
    from tests.test_attention_sae import _lossless

    folder = RunFolder(tmp_path / "run")
    folder.save_detector(get_detector("sink").run(tiny), "fp")
    # tiny's random heads need the sink only a little: a 0.002-nat threshold labels 3 of 8
    causal = get_detector("sink_need").run(tiny, n_tokens=24, exact_top=8, threshold=0.002)
    folder.save_detector(causal, "fp")
    # the SAE family score must take the contrast the causal score used (from the manifest)
    folder.write_manifest({"detectors": {"sink_need": {"config": {"n_tokens": 24}}}})
    d_in = int(tiny.cfg.n_heads) * int(tiny.cfg.d_head)
    saes = [{la: _lossless(d_in) for la in range(2)}] * 2
    d = discover_family(tiny, "sink", tmp_path / "run", sae_epochs=10, progress=False,
                        seeds=[0, 1], attn_saes=saes, evidence=True)  # fmt: skip
    ev = d.summary["evidence"]
    assert ev["reference"].startswith("causal") and ev["n_heads"] == 8
    truth = causal.table.sort_values(["layer", "head"]).exact.to_numpy() > 0.002
    assert ev["n_with_role"] == int(truth.sum()) and 0 < truth.sum() < 8
    want = {"discrete-code SAE", "write change", "sink detector", "causal estimate",
            "attention-output SAE"}  # fmt: skip
    assert set(ev["methods"]) == want
    for name, row in ev["methods"].items():
        scores = np.nan_to_num(np.atleast_2d(np.array(ev["scores"][name])))
        per_seed = [roc_auc_score(truth, s) for s in scores]
        assert row["auc"] == pytest.approx(np.mean(per_seed)), name
        assert set(row["baselines"]) == {"layer index", "layer index (reversed)", "write norm",
                                         "s_0"}  # fmt: skip
    assert len(ev["methods"]["discrete-code SAE"]["seeds"]) == 2
    # the lossless attention-output SAE reproduces the causal estimate's ranking exactly
    assert ev["methods"]["attention-output SAE"]["auc"] == pytest.approx(
        ev["methods"]["causal estimate"]["auc"]
    )


def test_attn_saes_and_families_cli(tiny, tmp_path):
    """`interp attn-saes` trains SAELens folders per layer (a bad --layers is one line, exit
    2); `interp families --attn-saes` puts their family score in the evidence table."""
    runner = CliRunner()
    saes = tmp_path / "saes"
    r = runner.invoke(app, ["attn-saes", "tiny", "--out", str(saes), "--layers", "0,3"])
    assert r.exit_code == 2 and "--layers must be in 0..1" in r.output
    r = runner.invoke(app, ["attn-saes", "tiny", "--out", str(saes), "--layers", "0,1",
                            "--epochs", "1", "--tokens", "32", "--windows", "4"])  # fmt: skip
    assert r.exit_code == 0, r.output
    for la in (0, 1):
        assert (saes / f"blocks.{la}.attn.hook_z" / "cfg.json").is_file()
    run = _run_folder(tmp_path / "r", "sink", [True] * 3 + [False] * 5)
    out = tmp_path / "out"
    r = runner.invoke(app, ["families", "tiny", "--run", str(run), "--family", "sink",
                            "--epochs", "5", "--seeds", "2", "--attn-saes", str(saes),
                            "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "sink.json").read_text())
    methods = meta["evidence"]["methods"]
    assert {"attention-output SAE", "discrete-code SAE", "write change"} <= set(methods)
    assert len(methods["discrete-code SAE"]["seeds"]) == 2
    assert "attention-output" in r.output and "baseline" in r.output  # (cells wrap)
    r = runner.invoke(app, ["families", "tiny", "--run", str(run), "--family", "sink",
                            "--attn-saes", str(tmp_path / "nope"), "--out", str(out)])  # fmt: skip
    assert r.exit_code == 2 and "interp attn-saes" in r.output
