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
