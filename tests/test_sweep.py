"""interp sweep: config errors, per-prompt measures vs references, Ray == in-process, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import interp
import interp.heads
from interp.errors import InputError
from interp.sweep import parse_config, run_sweep, store
from interp.sweep.shards import ShardRunner, plan

ROOT = Path(__file__).parents[1]
BASE = {
    "name": "t",
    "models": ["tiny"],
    "prompts": [{"name": "scan", "builtin": "scan"}, {"name": "text", "haystack": 3}],
    "context_lengths": [32, 64],
    "shard_size": 4,
}


def _cfg(**over):
    return parse_config({**BASE, **over})


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"models": []}, "non-empty list"),
        ({"detectors": ["retrieval"]}, "use interp scan"),
        ({"prompts": [{"file": "/no/such.txt"}]}, "does not exist"),
        ({"prompts": [{"builtin": "scan", "haystack": 2}]}, "exactly one"),
        ({"context_lengths": [1]}, r"integers in \[2, 1,000,000\]"),
        ({"shard_size": 0}, "shard_size"),
        ({"colour": "red"}, "unknown sweep key"),
        ({"prompts": [{"name": "../../../../escaped_set", "haystack": 2}]}, "no '..'"),
        ({"prompts": [{"name": "a/b", "haystack": 2}]}, "prompt set name 'a/b'"),
        ({"name": "../up"}, "sweep name"),
        ({"detectors": 5}, "non-empty list"),
        ({"detectors": []}, "non-empty list"),
        ({"context_lengths": []}, "non-empty list of integers"),
        ({"prompts": [{"task": "ioi", "n": "abc"}]}, "n of task set"),
        ({"prompts": [{"task": "ioi", "n": -3}]}, "n of task set"),
        ({"prompts": [{"haystack": True}]}, "windows per length"),
    ],
)
def test_config_errors_say_what_is_wrong(over, message):
    with pytest.raises(InputError, match=message):
        _cfg(**over)


def test_a_sweep_never_writes_outside_its_folder(tmp_path):
    """Names that would become paths outside the output folder (or nested ones the reader never
    reads) fail before any work, with exit code 2 and nothing written anywhere."""
    from typer.testing import CliRunner

    from interp.cli import app

    root = tmp_path / "root"
    root.mkdir()
    for name in ("../../../../escaped_set", "a/b"):
        cfg_file = tmp_path / "bad.yaml"
        bad = {**BASE, "prompts": [{"name": name, "haystack": 2}], "context_lengths": [32]}
        cfg_file.write_text(yaml.safe_dump(bad))
        result = CliRunner().invoke(app, ["sweep", str(cfg_file), "--out", str(root / "out")])
        assert result.exit_code == 2, result.output
        assert "prompt set name" in result.output
        assert not list(root.rglob("*"))  # nothing under the out folder's parent either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "root"]


def test_model_labels_become_safe_folder_names():
    cfg = _cfg(models=["../../tiny", {"name": "tiny", "label": "a/b"}])
    assert [m.label for m in cfg.models] == ["tiny", "b"]


def test_plan_is_deterministic_and_covers_every_prompt():
    shards = plan(_cfg())
    assert [s.id for s in shards] == [s.id for s in plan(_cfg())]
    scan = [s for s in shards if s.prompt_set == "scan"]
    assert sum(s.stop - s.start for s in scan) == 16  # the bundled scan prompts
    text = [s for s in shards if s.prompt_set == "text"]
    assert {s.length for s in text} == {32, 64} and len(text) == 2


def test_shard_measures_match_references():
    runner = ShardRunner("tiny", threads=1)
    shard = next(s for s in plan(_cfg()) if s.prompt_set == "text" and s.length == 32)
    tables = runner.run(shard)
    ids = runner.prompts(shard)[1]
    model = runner.model
    _, cache = model.run_with_cache(torch.tensor([ids]))
    pats = torch.stack([cache[f"blocks.{la}.attn.hook_pattern"][0] for la in range(2)])
    row = lambda df: df[(df["prompt"] == 1) & (df["layer"] == 1) & (df["head"] == 2)].iloc[0]  # noqa: E731
    a = pats[1, 2]
    n = a.shape[0]
    # entropy: mean over queries t >= 1 of -sum_j A log A
    ent = float(np.mean([-(a[t, : t + 1] * a[t, : t + 1].log()).sum() for t in range(1, n)]))
    assert row(tables["head_stats"])["entropy"] == pytest.approx(ent, rel=1e-5)
    assert row(tables["sink"])["score"] == pytest.approx(float(a[:, 0].sum() / n), rel=1e-5)
    hidden = int(sum(float(a[j:, j].sum()) / (n - j) > 0.1 for j in range(1, n)))
    assert row(tables["sink"])["hidden_sinks"] == hidden
    # detection patterns written out from their definitions (not interp.heads.classic)
    prev = [(t, t - 1) for t in range(1, n)]
    induct = [(t, s) for t in range(n) for s in range(1, t + 1) if ids[s - 1] == ids[t]]
    for name, pairs in (("previous_token", prev), ("induction", induct)):
        got = row(tables[name])["score"]
        if not pairs:
            assert np.isnan(got)
        else:
            want = sum(float(a[t, s]) for t, s in pairs) / float(a.sum())
            assert got == pytest.approx(want, rel=1e-5)


def test_in_process_and_ray_give_identical_tables(tmp_path):
    pytest.importorskip("ray", reason="the Ray engine needs the distributed extra (ray)")
    cfg = _cfg()
    local = run_sweep(cfg, tmp_path / "local", threads=1, progress=False)
    ray = run_sweep(cfg, tmp_path / "ray", engine="ray", workers=2, progress=False)
    assert local.computed == ray.computed == local.n_shards and not ray.failed
    assert set(local.tables) == set(ray.tables) == {
        "head_stats", "sink", "previous_token", "duplicate_token", "induction",
    }  # fmt: skip
    for name in local.tables:
        pd.testing.assert_frame_equal(local.tables[name], ray.tables[name], check_exact=True)


def test_killed_sweep_resumes_and_recomputes_only_missing_shards(tmp_path):
    cfg_file = tmp_path / "sweep.yaml"
    cfg_file.write_text(yaml.safe_dump({**BASE, "shard_size": 1, "context_lengths": [32]}))
    out = tmp_path / "out"
    env = {**os.environ, "INTERP_SWEEP_THROTTLE_S": "0.4"}
    cmd = [sys.executable, "-m", "interp.cli", "sweep", str(cfg_file), "--out", str(out),
           "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    shards_dir = out / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(shards_dir.glob("*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in shards_dir.glob("*.json")}
    cfg = parse_config(yaml.safe_load(cfg_file.read_text()), cfg_file)
    total = len(plan(cfg))
    assert 3 <= len(done_before) < total, "the sweep must be killed mid-way"
    files_before = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*.parquet")}
    resumed = run_sweep(cfg, out, threads=1, progress=False)
    assert resumed.reused == len(done_before) and resumed.computed == total - len(done_before)
    for p, mtime in files_before.items():  # finished shards were not rewritten
        assert p.stat().st_mtime_ns == mtime
    clean = run_sweep(cfg, tmp_path / "clean", threads=1, progress=False)
    for name in clean.tables:
        pd.testing.assert_frame_equal(resumed.tables[name], clean.tables[name], check_exact=True)


def test_bad_input_shard_is_reported_without_losing_others(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    cfg_file = tmp_path / "sweep.yaml"
    cfg_file.write_text(yaml.safe_dump({**BASE, "context_lengths": [32, 4096], "retries": 1}))
    result = CliRunner().invoke(app, ["sweep", str(cfg_file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "longer than tiny's context 1024" in result.output
    failed = store.failures(tmp_path / "o")
    assert len(failed) == 1 and failed[0]["attempts"] == 1  # InputError: retrying cannot help
    ok = store.read_dataset(tmp_path / "o")["sink"]
    assert set(ok["prompt_set"]) == {"scan", "text"} and set(ok["length"]) > {32}


def test_aggregates_and_dashboard_run_folder(tmp_path):
    from dashboards.tables import read_run

    r = run_sweep(_cfg(), tmp_path, threads=1, progress=False)
    summary = pd.read_parquet(tmp_path / "summary" / "induction.parquet")
    raw = r.tables["induction"]
    want = raw.groupby(["layer", "head"])["score"].mean().to_numpy()
    np.testing.assert_allclose(summary.sort_values(["layer", "head"])["score_mean"], want)
    curves = pd.read_parquet(tmp_path / "summary" / "by_length.parquet")
    assert {32, 64} <= set(curves["length"])
    scores, manifest = read_run(tmp_path / "runs" / "tiny")
    assert manifest["model"]["name"] == "tiny" and len(scores) == 8
    assert {"sink_on_prompts", "induction_on_prompts", "entropy"} <= set(scores.columns)
    # scored on the prompts themselves: never under the name of the scan's detector column
    # (the scan's induction score is on repeated random tokens)
    assert not set(scores.columns) & set(interp.heads.detector_names())
    per_head = scores.set_index(["layer", "head"])["induction_on_prompts"]
    np.testing.assert_allclose(per_head.sort_index().to_numpy(), want)
    assert (tmp_path / "plots" / "by_length.png").is_file()
    assert (tmp_path / "report.md").read_text().startswith("# Sweep t")
    model = interp.load_model("tiny")
    assert str(model.cfg.model_name) == manifest["model"]["name"]


def test_transient_failures_are_retried_and_persistent_ones_reported(tmp_path, monkeypatch):
    real_run = ShardRunner.run
    calls: dict[str, int] = {}

    def flaky(self, shard):
        calls[shard.id] = calls.get(shard.id, 0) + 1
        if shard.prompt_set == "text" and shard.length == 64:
            raise RuntimeError("worker lost")  # every attempt
        if calls[shard.id] == 1:
            raise RuntimeError("transient")  # first attempt only
        return real_run(self, shard)

    monkeypatch.setattr(ShardRunner, "run", flaky)
    cfg = _cfg(retries=2)
    r = run_sweep(cfg, tmp_path, threads=1, progress=False)
    assert len(r.failed) == 1 and r.failed[0]["attempts"] == 3
    assert "RuntimeError: worker lost" in r.failed[0]["error"]
    assert r.computed == r.n_shards - 1 and all(n in (2, 3) for n in calls.values())
    markers = [store.marker(tmp_path, s) for s in plan(cfg)]
    info = [json.loads(m.read_text()) for m in markers if m.is_file()]
    assert all(i["attempts"] == 2 for i in info)
