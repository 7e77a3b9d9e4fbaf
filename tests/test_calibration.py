"""ACT sink calibration: the transform on a hand-computed example, row sums, untouched heads,
config round trip, apply/remove restoring logits exactly, dataset files and choice scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.calibration import (
    CalibrationConfig,
    apply_calibration,
    cached_calibration_hooks,
    calibrate_pattern,
    calibrated,
    calibration_hooks,
)
from interp.calibration_data import DATASET_GROUPS, bundled_dataset, load_dataset, pooled_rows
from interp.calibration_scoring import ChoiceScorer
from interp.calibration_search import SearchOptions, evaluate, search_heads
from interp.calibration_stats import paired_bootstrap, wilson
from interp.errors import InputError

A = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.5, 0.5, 0.0, 0.0],
        [0.4, 0.4, 0.2, 0.0],
        [0.4, 0.3, 0.1, 0.2],
    ]
)[None, None]


def test_transform_hand_computed():
    # s = [2.3/4, 1.2/3, 0.3/2, 0.2/1] = [0.575, 0.4, 0.15, 0.2]
    # threshold 0.3: sinks {0, 1}; the first (0) is kept -> only key 1 is calibrated
    got = calibrate_pattern(A, beta=0.4, threshold=0.3)[0, 0]
    expected = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.5 + 0.3, 0.2, 0.0, 0.0],  # freed 0.6 * 0.5 all goes to key 0
            [0.4 + 0.24 * 0.4 / 0.6, 0.16, 0.2 + 0.24 * 0.2 / 0.6, 0.0],
            [0.4 + 0.18 * 0.4 / 0.7, 0.12, 0.1 + 0.18 * 0.1 / 0.7, 0.2 + 0.18 * 0.2 / 0.7],
        ]
    )
    torch.testing.assert_close(got, expected)
    # threshold 0.1: sinks {0, 1, 2, 3} minus the first -> keys 1-3 calibrated, key 0 takes all
    got = calibrate_pattern(A, beta=0.4, threshold=0.1)[0, 0]
    torch.testing.assert_close(got[3], torch.tensor([0.4 + 0.36, 0.12, 0.04, 0.08]))


def test_rows_sum_to_one_and_padding_is_untouched():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 9, 9, generator=g)
    s = s.masked_fill(~torch.ones(9, 9).tril().bool(), float("-inf"))
    a = s.softmax(-1)
    a[1, :, 6:] = 0  # prompt 1 has 6 real tokens (padding zeroed)
    a[1, :, :, 6:] = 0
    out = calibrate_pattern(a, lengths=[9, 6])
    torch.testing.assert_close(out[0].sum(-1), torch.ones(3, 9))
    torch.testing.assert_close(out[1, :, :6].sum(-1), torch.ones(3, 6))
    assert (out[1, :, 6:] == 0).all() and (out[1, :, :, 6:] == 0).all()
    assert not torch.equal(out, a)


def _patterns(model, ids, hooks=()):
    got = {}

    def grab(x, hook):
        got[hook.name] = x.detach().clone()

    names = [f"blocks.{la}.attn.hook_pattern" for la in range(2)]
    with torch.no_grad(), model.hooks(fwd_hooks=[*hooks, *[(n, grab) for n in names]]):
        logits = model(ids)
    return got, logits


def test_only_calibrated_heads_change(tiny):
    ids = torch.tensor([tiny.tokenizer("the cat sat on the mat, the end")["input_ids"]])
    cfg = CalibrationConfig("tiny", [(1, 2)])
    clean, _ = _patterns(tiny, ids)
    cal, _ = _patterns(tiny, ids, calibration_hooks(tiny, cfg))
    assert torch.equal(cal["blocks.0.attn.hook_pattern"], clean["blocks.0.attn.hook_pattern"])
    p1, c1 = cal["blocks.1.attn.hook_pattern"], clean["blocks.1.attn.hook_pattern"]
    assert torch.equal(p1[:, [0, 1, 3]], c1[:, [0, 1, 3]])
    torch.testing.assert_close(p1[:, 2], calibrate_pattern(c1[:, 2:3])[:, 0])


def test_padded_batch_needs_its_lengths(tiny):
    """With explicit lengths a right-padded batch is calibrated as each prompt alone; without
    them the hook refuses instead of computing sink scores with the padded length."""
    from interp.tokens import tokenize

    batch = tokenize(tiny, ["the cat sat on the mat, the end", "a dog"])
    cfg = CalibrationConfig("tiny", [(0, 1), (1, 2)])
    with torch.no_grad(), calibrated(tiny, cfg, lengths=batch.lengths):
        padded = tiny(batch.tokens, attention_mask=batch.attention_mask)
    for b, n in enumerate(batch.lengths):
        with torch.no_grad(), calibrated(tiny, cfg):
            alone = tiny(batch.tokens[b : b + 1, :n])
        torch.testing.assert_close(padded[b, :n], alone[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(InputError, match="lengths=batch.lengths"), calibrated(tiny, cfg):
        tiny(batch.tokens, attention_mask=batch.attention_mask)


def test_config_round_trip_and_errors(tmp_path):
    cfg = CalibrationConfig("tiny", [(1, 2), (0, 3)], 0.5, 0.2, {"task": "x"})
    cfg.save(tmp_path / "c.json")
    back = CalibrationConfig.load(tmp_path / "c.json")
    assert back == cfg
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a calibration config"):
        CalibrationConfig.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        CalibrationConfig.load(tmp_path / "none.json")


def test_apply_and_remove_restore_logits_exactly(tiny, tmp_path):
    ids = torch.tensor([tiny.tokenizer("hello hello hello there friend")["input_ids"]])
    with torch.no_grad():
        before = tiny(ids)
    cfg = CalibrationConfig("tiny", [(0, 1), (1, 2)])
    cfg.save(tmp_path / "c.json")
    handle = apply_calibration(tiny, tmp_path / "c.json")
    with torch.no_grad():
        during = tiny(ids)
        tiny.reset_hooks()  # a user's reset does not drop the calibration
        during2 = tiny(ids)
    assert not torch.equal(before, during) and torch.equal(during, during2)
    handle.remove()
    with torch.no_grad():
        assert torch.equal(tiny(ids), before)
    with calibrated(tiny, cfg), torch.no_grad():
        assert torch.equal(tiny(ids), during)
    with torch.no_grad():
        assert torch.equal(tiny(ids), before)
    with pytest.raises(InputError, match="made for"):
        apply_calibration(tiny, CalibrationConfig("other-model", [(0, 0)]))


def _dataset_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_groups_pool_the_calibration_splits_of_their_members():
    """A group's calibration set is its members' calibration splits, in order, and no
    member's test example leaks into it."""
    for group, names in DATASET_GROUPS.items():
        pooled = pooled_rows(group, "calibration")
        parts = [load_dataset(bundled_dataset(n, "calibration")) for n in names]
        assert pooled == [row for part in parts for row in part]
        tests = {r["prompt"] for n in names for r in load_dataset(bundled_dataset(n, "test"))}
        assert not tests & {r["prompt"] for r in pooled}
    assert pooled_rows("topic", "test") == load_dataset(bundled_dataset("topic", "test"))
    with pytest.raises(InputError, match="unknown bundled dataset 'sentimnt'"):
        pooled_rows("sentimnt", "calibration")


def test_evaluate_pairs_before_and_after(tiny):
    rows = [{"prompt": f"item {i} is", "choices": [" a", " b"], "label": i % 2} for i in range(6)]
    none = evaluate(tiny, CalibrationConfig("tiny", []), "t", rows)
    assert np.array_equal(none.before, none.after)  # no heads: nothing changes
    one = evaluate(tiny, CalibrationConfig("tiny", [(1, 0)]), "t", rows)
    expected = ChoiceScorer(tiny, rows).correct(CalibrationConfig("tiny", [(1, 0)]))
    assert np.array_equal(one.after, expected) and np.array_equal(one.before, none.before)
    assert one.summary()["n_test"] == 6


def test_dataset_file_validation(tmp_path):
    row = {"prompt": "a", "choices": [" b", " c"], "label": 1}
    good = _dataset_file(tmp_path / "t.jsonl", [row])
    assert load_dataset(good)[0]["label"] == 1
    bad = _dataset_file(tmp_path / "b.jsonl", [{"prompt": "a", "choices": [" b"], "label": 0}])
    with pytest.raises(InputError, match="b.jsonl:1"):
        load_dataset(bad)


def test_sequence_scores_match_full_logits(tiny):
    rows = [
        {"prompt": "the cat", "choices": [" sat", " ran far"], "label": 0},
        {"prompt": "one two", "choices": [" three", " four", " x"], "label": 2},
    ]
    scorer = ChoiceScorer(tiny, rows, mode="sequence")
    got = scorer.logprobs()
    tok = tiny.tokenizer
    ref = np.full((2, 3), -np.inf)
    with torch.no_grad():
        for e, row in enumerate(rows):
            p = tok(row["prompt"])["input_ids"]
            for c, choice in enumerate(row["choices"]):
                ids = tok(row["prompt"] + choice)["input_ids"]
                lp = tiny(torch.tensor([ids]))[0].log_softmax(-1)
                ref[e, c] = sum(lp[i - 1, ids[i]].item() for i in range(len(p), len(ids)))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert scorer.correct().tolist() == [ref[0, 0] > ref[0, 1], ref[1, 2] > ref[1, :2].max()]


def test_label_scores_are_the_official_code(tiny):
    """ACT's main.py: one forward of the prompt, log-softmax over the label tokens' logits at
    the last position (written out here with the full logits)."""
    rows = [
        {"prompt": "the cat is ", "choices": ["a", "bc", "d"], "label": 1},
        {"prompt": "x y ", "choices": ["q", "r"], "label": 0},
    ]
    scorer = ChoiceScorer(tiny, rows)
    assert scorer.mode == "label"
    got = scorer.logprobs()
    tok = tiny.tokenizer
    with torch.no_grad():
        for e, row in enumerate(rows):
            logits = tiny(torch.tensor([tok(row["prompt"])["input_ids"]]))[0, -1]
            first = [tok(c, add_special_tokens=False)["input_ids"][0] for c in row["choices"]]
            ref = logits[first].log_softmax(-1).numpy()
            np.testing.assert_allclose(got[e, : len(first)], ref, rtol=1e-4, atol=1e-5)
    assert got[1, 2] == -np.inf  # fewer choices than the widest example
    margins = scorer.margins(got)
    assert margins[0] == pytest.approx(got[0, 1] - max(got[0, 0], got[0, 2]))
    with pytest.raises(InputError, match="distinct tokens"):
        ChoiceScorer(tiny, [{"prompt": "a", "choices": [" b", " c"], "label": 0}], mode="label")


def test_one_sink_set_per_prompt_for_every_choice():
    """With prompt_lengths the sink set comes from the prompt's rows and keys only and is
    applied to every row: the prompt's rows equal calibrating the prompt alone, and a key
    that is a sink only because of the appended rows is not calibrated."""
    a = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0, 0.0],
            [0.6, 0.3, 0.1, 0.0],
            [0.0, 0.5, 0.5, 0.0],
        ]
    )[None, None]
    # prompt (3 tokens): s = [2.1/3, 0.8/2, 0.1/1] -> sinks {0, 1}; key 1 calibrated
    got = calibrate_pattern(a, beta=0.4, threshold=0.3, prompt_lengths=[3])[0, 0]
    alone = calibrate_pattern(a[..., :3, :3], beta=0.4, threshold=0.3)[0, 0]
    torch.testing.assert_close(got[:3, :3], alone)
    # appended row: key 1 keeps 0.2, the freed 0.3 goes to key 2 (not a prompt sink)
    torch.testing.assert_close(got[3], torch.tensor([0.0, 0.2, 0.8, 0.0]))
    # on the whole sequence key 2 (s = 0.6 / 2) is a sink too and row 3 has nowhere to go
    whole = calibrate_pattern(a, beta=0.4, threshold=0.29, prompt_lengths=None)[0, 0]
    torch.testing.assert_close(whole[3], a[0, 0, 3])
    with pytest.raises(InputError, match="prompt length"):
        calibrate_pattern(a, prompt_lengths=[5])


def test_restart_from_a_cached_layer_is_exact_and_skips_the_layers_below(tiny):
    rows = [
        {"prompt": f"item {i} is the ", "choices": ["a", "b"], "label": i % 2} for i in range(5)
    ]
    cfg = CalibrationConfig(str(tiny.cfg.model_name), [(1, 2)])
    seen: list[int] = []
    tiny.blocks[0].attn.hook_pattern.add_hook(lambda x, hook: seen.append(1), is_permanent=True)
    try:
        for mode in ("label", "sequence"):
            scorer = ChoiceScorer(tiny, rows, mode=mode, batch_size=2)
            full = scorer.logprobs(cfg)
            assert seen  # a full pass runs layer 0
            scorer.cache_layers([1])
            seen.clear()
            cached = scorer.logprobs(cfg)
            assert not seen  # layer 0 did not run
            np.testing.assert_allclose(cached, full, rtol=0, atol=1e-6)
            assert not np.array_equal(full, scorer.logprobs(None))  # the head changes scores
    finally:
        tiny.reset_hooks(including_permanent=True)


def test_search_runs_on_tiny():
    rows = [{"prompt": f"item {i} is", "choices": [" a", " b"], "label": i % 2} for i in range(6)]
    from interp import load_model

    model = load_model("tiny")
    r = search_heads(model, rows, progress=False, options=SearchOptions(first_layer=0))
    # official candidates: layers first_layer .. L-2; the last layer (1 of tiny's 2) never
    assert [(p["layer"], p["head"]) for p in r.per_head] == [(0, h) for h in range(4)]
    assert r.config.provenance["n_calibration"] == 6


def test_calibration_refuses_kv_cached_decoding():
    """Under a KV cache a decoding step sees one query row, where the whole-sequence hooks
    cannot form sink scores (column means over all queries): they say so instead of silently
    doing nothing (``cached_calibration_hooks`` is the KV-cached form)."""
    from interp import load_model
    from interp.calibration import CalibrationConfig, calibrated
    from interp.errors import InputError
    from interp.generate import greedy_decode

    model = load_model("tiny")
    cfg = CalibrationConfig(str(model.cfg.model_name), [(1, 0)])
    with calibrated(model, cfg), pytest.raises(InputError, match="KV-cached"):
        greedy_decode(model, [5, 6, 7, 8], max_new_tokens=2)


def test_cached_calibration_equals_act_on_the_sequence_so_far(tiny):
    """Hand-built causal patterns fed as a KV-cached decoder sees them (the prompt's rows, then
    one row per step): the prompt pass equals ACT's transform on the prompt, and every step's
    row equals the last row of ACT's transform on the whole sequence up to that token (its
    column sums cover every row so far). A hook set reused for another sequence refuses."""
    gen = torch.Generator().manual_seed(0)
    n, m = 12, 7  # sequence length, prompt length
    raw = torch.rand(1, 4, n, n, generator=gen) ** 4
    raw[..., 0] += 3.0 * torch.rand(1, 4, n, generator=gen)  # a first-token sink
    raw[..., 3] += 1.5 * torch.rand(1, 4, n, generator=gen)  # a second sink to calibrate
    p = torch.tril(raw)
    p = p / p.sum(-1, keepdim=True)
    cfg = CalibrationConfig(str(tiny.cfg.model_name), [(0, 1), (0, 3)])
    (name, hook), *_ = cached_calibration_hooks(tiny, cfg)
    assert name == "blocks.0.attn.hook_pattern"
    heads = [1, 3]
    out = hook(p[:, :, :m, :m].clone(), None)
    ref = calibrate_pattern(p[:, heads, :m, :m], None, cfg.beta, cfg.threshold)
    torch.testing.assert_close(out[:, heads], ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, [0, 2]], p[:, [0, 2], :m, :m])  # other heads untouched
    changed = 0
    for t in range(m, n):
        row = hook(p[:, :, t : t + 1, : t + 1].clone(), None)
        full = calibrate_pattern(p[:, heads, : t + 1, : t + 1], None, cfg.beta, cfg.threshold)
        torch.testing.assert_close(row[:, heads], full[:, :, -1:], rtol=0, atol=1e-6)
        changed += int(not torch.equal(row[:, heads], p[:, heads, t : t + 1, : t + 1]))
    assert changed > 0  # the case does calibrate something
    with pytest.raises(InputError, match="fresh hooks"):
        hook(p[:, :, 3:4, :4].clone(), None)


def test_intervals():
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)
    same = np.ones(30)
    assert paired_bootstrap(same, same) == (0.0, 0.0)


def test_inputs_with_nothing_to_calibrate_are_skipped_exactly(tiny, monkeypatch):
    """After ``cache_layers`` a one-layer calibration runs only the inputs on which its heads
    have a hidden sink (two prompt keys above the threshold); the scores equal a scorer that
    runs every input, at every threshold, and with nothing to calibrate no forward runs."""
    rows = [
        {"prompt": f"{w} is the ", "choices": ["a", "b"], "label": i % 2}
        for i, w in enumerate(["the cat", "a dog ran", "one", "two red birds", "my old house"])
    ]
    name = str(tiny.cfg.model_name)
    fast = ChoiceScorer(tiny, rows, batch_size=2)
    fast.cache_layers([0, 1])
    every = ChoiceScorer(tiny, rows, batch_size=2)
    for threshold in (0.1, 0.3, 0.6):
        for la in range(2):
            for h in range(4):
                cfg = CalibrationConfig(name, [(la, h)], threshold=threshold)
                np.testing.assert_allclose(fast.logprobs(cfg), every.logprobs(cfg), atol=1e-5)
    runs = []
    real = ChoiceScorer._final_residual
    monkeypatch.setattr(
        ChoiceScorer, "_final_residual", lambda self, *a: runs.append(1) or real(self, *a)
    )
    cfg = CalibrationConfig(name, [(1, 0), (1, 3)], threshold=0.99)
    assert np.array_equal(fast.logprobs(cfg), fast.logprobs(None)) and len(runs) == 3
    runs.clear()
    fast.logprobs(cfg)
    assert not runs  # nothing to calibrate anywhere: no forward at all


def test_batched_transform_equals_each_example_alone():
    """The batch-at-once transform equals ACT's transform applied to each example alone (its
    own length, its sink set from its prompt rows), padding untouched; written out per example
    with dense.sink_scores as the reference."""
    from interp.calibration import calibrated_sinks, move_sink_mass
    from interp.stats import dense

    g = torch.Generator().manual_seed(1)
    n, lengths, prompts = 11, [11, 8, 5], [7, 8, 3]
    raw = torch.rand(3, 4, n, n, generator=g) ** 3
    raw[..., 0] += 2.0 * torch.rand(3, 4, n, generator=g)
    raw[..., 2] += 1.0 * torch.rand(3, 4, n, generator=g)
    a = torch.tril(raw)
    for i, length in enumerate(lengths):
        a[i, :, length:], a[i, :, :, length:] = 0, 0
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-30)
    got = calibrate_pattern(a, lengths, 0.4, 0.1, prompt_lengths=prompts)
    changed = 0
    for i, (length, p) in enumerate(zip(lengths, prompts, strict=True)):
        x = a[i, :, :length, :length]
        s = dense.sink_scores(x[None, :, :p, :p], [p])[0]
        sink = torch.zeros(4, length, dtype=torch.bool)
        sink[:, :p] = calibrated_sinks(s, 0.1)
        ref = move_sink_mass(x, sink, 0.4)
        torch.testing.assert_close(got[i, :, :length, :length], ref, rtol=0, atol=1e-6)
        assert (got[i, :, length:] == a[i, :, length:]).all()
        changed += int(not torch.equal(ref, x))
    assert changed == 3  # every example calibrates something
