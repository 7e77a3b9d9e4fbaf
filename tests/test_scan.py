"""interp.runs.scan: the per-head table against the dense statistics of run_heads, and resume."""

from __future__ import annotations

import json
import os

import pandas as pd
import torch

import interp
from interp.runs.scan import load_prompts, scan


def test_table_matches_direct_computation(tiny, tmp_path):
    prompts_file = tmp_path / "p.txt"
    prompts = ["abc def ghi", "a b", "the cat sat on the mat"]
    prompts_file.write_text("\n".join(prompts) + "\n")
    res = scan(
        tiny,
        tmp_path / "run",
        prompts_file=prompts_file,
        batch_size=2,
        detectors=(),
        progress=False,
    )
    df = res.table
    assert len(df) == 2 * 4 and set(df.columns) >= {"layer", "head", "kv_head", "sink_score_0"}
    # independent recomputation for layer 1, head 3 from the full patterns
    run = interp.run_heads(tiny, prompts, hooks=["pattern"])
    pat = run.pattern(1)[:, 3]
    prev, s0 = [], []
    for b, n in enumerate(run.lengths):
        prev += [pat[b, t, t - 1].item() for t in range(1, n)]
        s0.append(pat[b, :n, 0].mean().item())  # s_0 = sum_i A[i,0] / (N - 0)
    row = df[(df.layer == 1) & (df["head"] == 3)].iloc[0]
    assert abs(row.prev_token_mass - sum(prev) / len(prev)) < 1e-5
    assert abs(row.sink_score_0 - sum(s0) / len(s0)) < 1e-5
    assert row.kv_head == 1  # 4 heads over 2 kv heads: head 3 reads kv head 1
    assert (df.entropy >= 0).all() and (df.first_token_mass <= 1 + 1e-6).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["name"] == "tiny" and manifest["inputs"]["n_prompts"] == 3


def test_rerun_reuses_and_changed_inputs_recompute(tiny, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("one prompt\n")
    first = scan(tiny, tmp_path / "run", prompts_file=f, detectors=(), progress=False)
    again = scan(tiny, tmp_path / "run", prompts_file=f, detectors=(), progress=False)
    assert not first.reused and again.reused
    pd.testing.assert_frame_equal(first.table, again.table)
    f.write_text("a different prompt\n")
    changed = scan(tiny, tmp_path / "run", prompts_file=f, detectors=(), progress=False)
    assert not changed.reused


def test_bundled_prompts_load_with_newlines():
    prompts = load_prompts()
    assert len(prompts) >= 10 and any("\n" in p for p in prompts)
    assert all(p.strip() for p in prompts)


def test_scan_patterns_never_include_padding(tiny):
    run = interp.run_heads(tiny, ["x", "a longer one"], hooks=["pattern"])
    assert torch.all(run.pattern(0)[0, :, 1:, :] == 0)


def test_scan_runs_every_detector_and_resumes(tiny, tmp_path):
    from interp.heads import REGISTRY
    from interp.runs.scan import DEFAULT_DETECTORS

    attention = {n for n, c in REGISTRY.items() if not c.interventional}
    assert set(DEFAULT_DETECTORS) == attention
    assert {"sink_need", "retrieval_effect", "anchor_effect"} == set(REGISTRY) - attention
    out = tmp_path / "run"
    first = scan(tiny, out, detectors=list(REGISTRY), progress=False)
    assert set(first.detectors) == set(REGISTRY) and not any(first.detector_reused.values())
    for name, r in first.detectors.items():
        assert (out / "detectors" / f"{name}.parquet").is_file()
        assert {"layer", "head", "score", "threshold", "label"} <= set(r.table.columns)
        assert len(r.table) == 8
        for extra in r.extra:
            assert (out / "detectors" / f"{name}.{extra}.parquet").is_file()
    for f in ("detectors.png", "detectors.html", "summary.md"):
        assert (out / f).stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["detectors"]["induction"]["inputs"]["seed"] == 0
    config = manifest["detectors"]["retrieval"]["config"]  # every option, defaults included
    assert config["grid_name"] == "small" and config["threshold"] == 0.1
    # the manifest's paths are the run folder's own layout: every one exists, every table listed
    listed = {*manifest["tables"].values()}
    listed |= {p for d in manifest["detectors"].values() for p in d["extra_tables"].values()}
    assert all((out / p).is_file() for p in listed)
    assert listed == {str(p.relative_to(out)) for p in out.glob("**/*.parquet")
                      if "cache" not in p.parts and "validation" not in p.parts}  # fmt: skip
    assert (out / "head_stats.png").stat().st_size > 0
    assert "Retrieval heads" in (out / "summary.md").read_text()
    assert "Heads that need their sink keys" in (out / "summary.md").read_text()
    again = scan(tiny, out, detectors=list(REGISTRY), progress=False)
    assert all(again.detector_reused.values())
    for name in REGISTRY:
        pd.testing.assert_frame_equal(first.detectors[name].table, again.detectors[name].table)


def test_changed_default_or_constant_recomputes_the_table(tiny, tmp_path, monkeypatch):
    """The cache key covers every default a table depends on: changing a detector's default
    threshold, or a shared constant, recomputes instead of reusing the stale table."""
    from dataclasses import dataclass

    from interp import defaults
    from interp.heads.classic import TextWindowsConfig
    from interp.heads.previous_token import PreviousTokenDetector

    out = tmp_path / "run"
    first = scan(tiny, out, detectors=["previous_token"], progress=False)
    assert not first.detector_reused["previous_token"]
    assert scan(tiny, out, detectors=["previous_token"], progress=False).detector_reused[
        "previous_token"
    ]

    @dataclass(frozen=True)
    class LowerThreshold(TextWindowsConfig):  # a new default threshold
        threshold: float = 0.01

    with monkeypatch.context() as m:
        m.setattr(PreviousTokenDetector, "Config", LowerThreshold)
        changed = scan(tiny, out, detectors=["previous_token"], progress=False)
    assert not changed.detector_reused["previous_token"]
    assert (changed.detectors["previous_token"].table.threshold == 0.01).all()
    monkeypatch.setattr(defaults, "WAAD_WINDOW", 11)
    assert not scan(tiny, out, detectors=["previous_token"], progress=False).detector_reused[
        "previous_token"
    ]


def test_registry_is_the_one_list_and_refuses_duplicates():
    """Scan, dashboard and sweep read the registry; a second detector under a taken name, or
    one that does not declare its capabilities, is refused."""
    import pytest

    from dashboards.tables import FAST_DETECTORS
    from interp.heads import REGISTRY, detector_names, register
    from interp.heads.base import DetectorBase
    from interp.runs.scan import DEFAULT_DETECTORS
    from interp.sweep.config import DETECTORS

    assert list(DEFAULT_DETECTORS) == [n for n, c in REGISTRY.items() if not c.interventional]
    assert set(FAST_DETECTORS) == {n for n, c in REGISTRY.items() if c.dashboard}
    assert set(DETECTORS) - {"head_stats"} == {n for n, c in REGISTRY.items() if c.per_prompt}
    assert "retrieval" not in detector_names(causal=False)

    class Sink2:
        name = "sink"
        causal_only, dashboard, per_prompt, interventional = False, True, True, False

    with pytest.raises(ValueError, match="already registered"):
        register(Sink2)

    class Half:
        name = "half"

    with pytest.raises(TypeError, match="must declare"):
        register(Half)

    class NoConfig(DetectorBase):
        name = "no_config"
        causal_only, dashboard, per_prompt, interventional = False, True, True, False

    with pytest.raises(TypeError, match="frozen dataclass Config"):
        register(NoConfig)
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Unbounded:
        n_seqs: int = 8

    class NoRange(DetectorBase):
        name = "no_range"
        causal_only, dashboard, per_prompt, interventional = False, True, True, False
        Config = Unbounded

    with pytest.raises(TypeError, match="must declare their range"):
        register(NoRange)

    @dataclass(frozen=True)
    class Bounded:
        pass

    class NoBase:  # the optional members' defaults come from DetectorBase
        name = "no_base"
        causal_only, dashboard, per_prompt, interventional = False, True, True, False
        Config = Bounded

    with pytest.raises(TypeError, match="must subclass interp.heads.base.DetectorBase"):
        register(NoBase)
    assert not {"half", "no_config", "no_range", "no_base"} & set(REGISTRY)


def test_detector_options_are_checked_against_the_config():
    """Each detector's options are the fields of its Config: an unknown option or a value of
    the wrong type is an InputError naming the options; lists become tuples."""
    import pytest

    from interp.errors import InputError
    from interp.heads import get_detector
    from interp.heads.base import config_dict, configure

    sink = get_detector("sink")
    assert config_dict(sink) == {
        "n_tokens": 64,
        "threshold": 0.3,
        "streaming": None,
        "inputs": "text",
    }
    assert configure(sink, n_tokens=32).n_tokens == 32
    with pytest.raises(InputError, match=r"no option n_token; its options: n_tokens=64"):
        configure(sink, n_token=32)
    with pytest.raises(InputError, match="n_tokens='32' should be int"):
        configure(sink, n_tokens="32")
    with pytest.raises(InputError, match="sink inputs must be one of 'text', 'model_prompts'"):
        configure(sink, inputs="prompts")  # a value, checked by the Config itself
    anchor = configure(get_detector("anchor"), layers=[3, 4])
    assert anchor.layers == (3, 4) and hash(anchor)
    with pytest.raises(InputError, match="either a config or options"):
        configure(sink, sink.Config(), n_tokens=8)


def test_scan_options_reach_the_detector_and_its_cache_key(tiny, tmp_path):
    """``scan(options=...)`` runs the detector with them, records the full config in the
    manifest, and a different option recomputes the table."""
    out = tmp_path / "run"
    first = scan(tiny, out, detectors=["sink"], options={"sink": {"n_tokens": 16}}, progress=False)
    assert first.detectors["sink"].inputs["n_tokens"] == 16
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["detectors"]["sink"]["config"]["n_tokens"] == 16
    again = scan(tiny, out, detectors=["sink"], options={"sink": {"n_tokens": 24}}, progress=False)
    assert not again.detector_reused["sink"] and again.detectors["sink"].inputs["n_tokens"] == 24


def test_summary_ranks_only_the_analysed_heads():
    """A detector that analyses some layers only (anchor) is summarised by those heads."""
    from interp.heads.base import DetectorResult
    from interp.runs.summary import _top

    table = pd.DataFrame(
        {"layer": [0, 1, 2], "head": [0, 0, 0], "score": [9.0, 5.0, 4.0],
         "group": ["", "global", "local"], "threshold": 4.5, "label": [False, True, False]}
    )  # fmt: skip
    assert _top(DetectorResult("anchor", table, {})) == "L1.H0 (5.000), L2.H0 (4.000)"
    plain = table.drop(columns="group")
    assert _top(DetectorResult("x", plain, {})).startswith("L0.H0 (9.000)")


def test_a_model_folder_overwritten_in_place_is_rescanned(tmp_path):
    """The cache key holds the model's files (the content of weights, config, tokenizer), not
    only its path: new weights saved into the same folder recompute every table, also when
    they keep the old size and modification time (``cp -p``, ``rsync -t``)."""
    from interp.models.tiny import tiny_llama, tiny_tokenizer

    folder = tmp_path / "model"

    def save(seed: int) -> None:
        tiny_llama(seed=seed).save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)

    save(0)
    out = tmp_path / "run"
    kw = dict(detectors=["previous_token"], progress=False)
    first = scan(interp.load_model(str(folder)), out, **kw)
    again = scan(interp.load_model(str(folder)), out, **kw)
    assert again.reused and again.detector_reused["previous_token"]
    save(1)  # same path, other weights
    changed = scan(interp.load_model(str(folder)), out, **kw)
    assert not changed.reused and not changed.detector_reused["previous_token"]
    old, new = first.detectors["previous_token"].table, changed.detectors["previous_token"].table
    assert not old["score"].equals(new["score"])
    # other weights of the same size, the old modification time restored (touch -r)
    weights = folder / "model.safetensors"
    stamp = weights.stat()
    other = tmp_path / "other"
    tiny_llama(seed=2).save_pretrained(other)
    assert (other / "model.safetensors").stat().st_size == stamp.st_size
    weights.write_bytes((other / "model.safetensors").read_bytes())
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    swapped = scan(interp.load_model(str(folder)), out, **kw)
    assert not swapped.reused and not swapped.detector_reused["previous_token"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "SHA-256" in manifest["model"]["content_key_of"]


def test_a_second_writer_is_refused_while_the_folder_is_busy(tiny, tmp_path):
    """Two runs into one folder: the second fails at once with a clear error (the first holds
    an advisory lock), and the folder is free again when the first ends."""
    import pytest

    from interp.errors import InputError
    from interp.runs.folder import RunFolder

    out = tmp_path / "run"
    with RunFolder(out).lock():
        with pytest.raises(InputError, match=r"in use by interp pid \d+"):
            scan(tiny, out, detectors=[], progress=False)
        assert not (out / "head_stats.parquet").exists()  # nothing was computed
    assert not scan(tiny, out, detectors=[], progress=False).reused


def test_a_toy_model_folder_is_scanned_on_its_own_prompts(tmp_path):
    """A model folder that ships prompts.txt (``interp train-toy``: a toy vocabulary with no
    English words): the scan's head statistics read those prompts, the text detectors run with
    ``inputs="model_prompts"`` (recorded in the manifest), and ``--set`` still wins."""
    import pytest

    from circuits.planted import shipped_folder
    from interp.errors import InputError
    from interp.models import load_model

    folder = shipped_folder("sink")
    model = load_model(str(folder))
    result = scan(model, tmp_path / "run", detectors=["sink", "anchor"], progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["inputs"]["prompts_file"] == str(folder / "prompts.txt")
    for name in ("sink", "anchor"):
        assert manifest["detectors"][name]["config"]["inputs"] == "model_prompts"
    assert result.detectors["sink"].inputs["source"] == "the model folder's prompts"
    with pytest.raises(InputError, match="inputs='model_prompts'"):
        scan(model, tmp_path / "run2", detectors=["sink"], options={"sink": {"inputs": "text"}},
             progress=False)  # fmt: skip


def test_a_model_that_reads_english_keeps_the_published_inputs(tmp_path):
    """A model folder with a prompts.txt whose tokenizer reads the bundled English text (a
    byte-level tokenizer: no unknown token) keeps each detector's default, published inputs;
    the folder's prompts replace them only for a vocabulary that cannot read that text."""
    from circuits.planted import shipped_folder
    from interp.heads import get_detector
    from interp.inputs.text import own_inputs
    from interp.models import load_model
    from interp.models.tiny import tiny_llama, tiny_tokenizer

    folder = tmp_path / "byte-model"
    tiny_llama().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    (folder / "prompts.txt").write_text("one prompt\nanother prompt\n")
    sink = get_detector("sink")
    assert own_inputs(load_model(str(folder)), sink) == {}
    toy = load_model(str(shipped_folder("sink")))
    assert own_inputs(toy, sink) == {"inputs": "model_prompts"}
    assert own_inputs(toy, get_detector("induction")) == {}  # no inputs option
