"""Whole-model statistics without patterns (interp.stats.capture) against the bridge's own
patterns (transformer-lens hook_pattern), and the detectors' streaming path against their
dense path."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.heads import get_detector
from interp.stats.capture import model_attention_stats, plain_model


@pytest.mark.parametrize("name", ["tiny", pytest.param("smol", marks=pytest.mark.real_model)])
def test_stats_match_bridge_patterns(name, request):
    model = request.getfixturevalue(name)
    prompts = ["The quick brown fox jumps over the lazy dog. " * 3, "A short one."]
    run = interp.run_heads(model, prompts, hooks=["pattern"])
    stats = model_attention_stats(model, prompts)
    assert len(stats) == 2 and sorted(stats[0]) == list(range(int(model.cfg.n_layers)))
    for b, n in enumerate(run.lengths):
        for layer in (0, int(model.cfg.n_layers) - 1):
            p = run.pattern(layer)[b : b + 1, :, :n, :n]
            s = stats[b][layer]
            torch.testing.assert_close(
                s.entropy, torch.special.entr(p).sum(-1), atol=1e-4, rtol=1e-4
            )
            torch.testing.assert_close(s.col_sum, p.sum(-2), atol=1e-4, rtol=1e-4)
            assert torch.equal(s.argmax, p.argmax(-1))


def test_plain_model_shares_weights_and_layers_subset(tiny):
    plain = plain_model(tiny)
    assert plain is plain_model(tiny)  # cached
    bridged = dict(tiny.original_model.named_parameters())
    w = plain.model.layers[0].self_attn.q_proj.weight
    assert any(w.data_ptr() == p.data_ptr() for p in bridged.values())
    only = model_attention_stats(tiny, "hello world", layers=[0])[0]
    assert list(only) == [0]


def test_sink_and_anchor_streaming_equal_dense(tiny):
    dense = get_detector("sink").run(tiny, n_tokens=32, streaming=False)
    stream = get_detector("sink").run(tiny, n_tokens=32, streaming=True)
    assert stream.inputs["path"] == "streaming" and dense.inputs["path"] == "dense"
    torch.testing.assert_close(
        torch.tensor(stream.table.score.to_numpy()), torch.tensor(dense.table.score.to_numpy())
    )
    assert len(stream.extra["hidden_sinks"]) == len(dense.extra["hidden_sinks"])
    a_d = get_detector("anchor").run(tiny, n_tokens=64, n_windows=2, streaming=False)
    a_s = get_detector("anchor").run(tiny, n_tokens=64, n_windows=2, streaming=True)
    torch.testing.assert_close(
        torch.tensor(a_s.table.score.to_numpy()), torch.tensor(a_d.table.score.to_numpy())
    )
    assert a_s.table.group.tolist() == a_d.table.group.tolist()
    torch.testing.assert_close(
        torch.tensor(a_s.extra["tokens"].fai.to_numpy()),
        torch.tensor(a_d.extra["tokens"].fai.to_numpy()),
        equal_nan=True,
    )


def test_fused_statistics_take_the_lse_of_the_models_own_attention(tiny, monkeypatch):
    """``with_lse``: every layer's attention runs through the SDPA op that returns its row
    log-sum-exps (torch's CPU flash kernel here), the model's output is unchanged, the LSE
    equals the one computed from q and k, and the one-pass statistics (triton backend in the
    interpreter, fed that LSE) equal the torch backend's two-pass ones."""
    from dataclasses import fields

    from interp.stats.capture import for_each_layer
    from interp.stats.streaming import attention_stats

    text = "The quick brown fox jumps over the lazy dog, twice over."
    ids = tiny.to_tokens(text)[0]
    base = plain_model(tiny)
    norm = base.get_decoder().norm if hasattr(base, "get_decoder") else base.model.norm
    outs, got = [], {}

    def keep(_module, _inputs, output):
        outs.append(output.detach().clone())

    def record(layer, q, k, scaling, lse=None):
        got[layer] = (q, k, scaling, lse)

    handle = norm.register_forward_hook(keep)
    try:
        for_each_layer(tiny, ids, lambda *a: None)
        for_each_layer(tiny, ids, record, with_lse=True)
    finally:
        handle.remove()
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    assert sorted(got) == list(range(int(tiny.cfg.n_layers)))
    for q, k, scaling, lse in got.values():
        assert lse is not None and lse.shape == q.shape[:3]
        ref = attention_stats(q, k, scale=scaling, backend="dense").lse
        torch.testing.assert_close(lse, ref, atol=1e-5, rtol=1e-5)
    from interp.kernels import fused_stats

    calls = []
    real = fused_stats.fused_attention_stats
    monkeypatch.setattr(
        fused_stats, "fused_attention_stats", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    one = model_attention_stats(tiny, text, backend="triton")[0]  # fused by default
    assert len(calls) == int(tiny.cfg.n_layers)  # one fused pass per layer
    two = model_attention_stats(tiny, text, backend="torch")[0]
    for layer in two:
        for f in fields(two[layer]):
            a, b = getattr(one[layer], f.name), getattr(two[layer], f.name)
            if f.name == "argmax":
                assert torch.equal(a, b)
            else:
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=f.name)
