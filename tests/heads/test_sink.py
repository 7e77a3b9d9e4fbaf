"""Sink heads: hand-built patterns with known sinks, and the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.heads import get_detector
from interp.heads.sink import hidden_sink_rows
from interp.stats.dense import sink_scores


def test_hidden_sink_found_in_hand_built_pattern():
    # 4 tokens; every query puts 0.5 on token 0 and 0.3 on token 1 (when visible)
    a = torch.tensor(
        [[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.5, 0.3, 0.2, 0], [0.5, 0.3, 0.05, 0.15]]
    )[None, None]
    s = sink_scores(a, [4])
    # s_0 = 2.5/4, s_1 = 1.1/3, s_2 = 0.25/2, s_3 = 0.15/1
    torch.testing.assert_close(s[0, 0], torch.tensor([2.5 / 4, 1.1 / 3, 0.125, 0.15]))
    rows = hidden_sink_rows(s, [4], [["<a>", "b", "c", "d"]], layer=0)
    assert [(r["position"], r["token"], r["n_queries"]) for r in rows] == [
        (1, "b", 3),
        (2, "c", 2),
        (3, "d", 1),
    ]


def test_no_hidden_sink_when_only_token_zero_is_attended():
    a = torch.zeros(1, 1, 5, 5)
    a[..., 0] = 1.0
    s = sink_scores(a, [5])
    assert hidden_sink_rows(s, [5], [list("abcde")], layer=0) == []
    assert s[0, 0, 0] == 1.0


def test_sink_detector_on_tiny(tiny):
    res = get_detector("sink").run(tiny, n_tokens=16)
    t = res.table
    assert len(t) == 8 and (t.threshold == 0.3).all()
    assert t.label.equals(t.score > 0.3)
    # the fraction of heads whose mean s_0 over the samples exceeds 0.3, recomputed from the
    # patterns of the detector's own samples
    from interp.inputs.text import all_patterns, text_samples

    batch = text_samples(tiny, n_tokens=16)
    pats = all_patterns(tiny, batch)
    s0 = torch.stack([sink_scores(p, batch.lengths)[..., 0].mean(0) for p in pats])  # [L, H]
    np.testing.assert_allclose(t.score.to_numpy(), s0.reshape(-1).numpy(), rtol=1e-5)
    assert res.inputs["sink_head_fraction"] == pytest.approx(float((s0 > 0.3).float().mean()))


def test_sink_metric_is_the_official_mean_of_indicators(tiny):
    """Gu et al.'s rule (eval_sink_open_source.py), written out: importance = (A / (N - j)) summed
    over queries, metric = mean over (sample, layer, head) of importance[..., 0] > 0.3 -- on the
    detector's own samples, each tokenized alone and cut to n tokens."""
    from interp.inputs.needles import haystack_text
    from interp.inputs.text import all_patterns, text_samples

    res = get_detector("sink").run(tiny, n_tokens=16)
    batch = text_samples(tiny, n_tokens=16)
    first_line = next(x for x in haystack_text().splitlines() if x.strip())
    assert batch.tokens[0].tolist() == tiny.tokenizer(first_line)["input_ids"][:16]
    a = all_patterns(tiny, batch).double()  # [layer, sample, head, 16, 16]
    ratios = torch.arange(16, 0, -1, dtype=torch.float64)  # N - j along the key axis
    importance = (a / ratios).sum(-2)  # [layer, sample, head, key]
    official = float((importance[..., 0] > 0.3).double().mean())
    assert res.inputs["sink_metric"] == pytest.approx(official)
    per_head = (importance[..., 0] > 0.3).double().mean(1).reshape(-1)  # over samples
    assert res.table.sink_rate.to_numpy() == pytest.approx(per_head.numpy())
    assert res.table.score.to_numpy() == pytest.approx(importance[..., 0].mean(1).reshape(-1))


@pytest.mark.real_model
def test_smollm2_has_first_token_and_hidden_sinks(smol):
    res = get_detector("sink").run(smol)
    metric, frac = res.inputs["sink_metric"], res.inputs["sink_head_fraction"]
    print(f"SmolLM2 sink metric (Gu et al.) {metric:.3f}; heads with mean s_0 > 0.3: {frac:.3f}")
    assert metric > 0.5 and frac > 0.5  # measured 0.729 and 0.763 (32 samples of 64 tokens)
    sinks = res.extra["hidden_sinks"]
    assert len(sinks) > 0 and (sinks.sink_score > 0.1).all() and (sinks.position >= 1).all()


@pytest.mark.real_model
def test_key_scores_match_hf_attention(smol, smol_hf_reference):
    """s_j of every key against sum_i A[i, j] / (N - j) from HF eager attention, by hand."""
    from interp.inputs.text import text_samples

    res = get_detector("sink").run(smol)
    ks = res.extra["key_scores"]
    hidden = res.extra["hidden_sinks"]
    batch = text_samples(smol)
    hf, _ = smol_hf_reference
    with torch.no_grad():
        attn = hf(batch.tokens[1:2], output_attentions=True).attentions
    for layer, head in [(3, 1), (20, 3)]:
        a = attn[layer][0, head].double()
        n = a.shape[0]
        ref = torch.tensor([a[j:, j].sum().item() / (n - j) for j in range(n)], dtype=torch.float64)
        sub = ks[(ks.layer == layer) & (ks["head"] == head) & (ks.window == 1)]
        sub = sub.sort_values("position")
        torch.testing.assert_close(
            torch.tensor(sub.sink_score.to_numpy()).double(), ref, atol=1e-5, rtol=1e-4
        )
        assert sub.token.tolist() == batch.str_tokens[1]
        # hidden sinks are exactly the keys j >= 1 with s_j > 0.1
        h = hidden[(hidden.layer == layer) & (hidden["head"] == head) & (hidden.window == 1)]
        assert sorted(h.position) == [j for j in range(1, n) if ref[j] > 0.1]
    row = res.table[(res.table.layer == 20) & (res.table["head"] == 3)].iloc[0]
    s0 = ks[(ks.layer == 20) & (ks["head"] == 3) & (ks.position == 0)].sink_score.mean()
    assert row.score == pytest.approx(float(s0), rel=1e-5)


def test_encoder_windows_carry_their_special_tokens(minilm, tiny):
    """Every window an encoder is scored on is [CLS] ... [SEP] (before, only the first window
    started with [CLS] and none ended with [SEP], so s_0 scored random word pieces); a
    tokenizer that adds nothing (tiny, SmolLM2) gets plain consecutive slices as before."""
    from interp.inputs.needles import haystack_text
    from interp.inputs.text import haystack_windows, text_samples, text_windows
    from interp.tokens import special_frame

    tok = minilm.tokenizer
    assert special_frame(tok) == ([tok.cls_token_id], [tok.sep_token_id])
    for batch in (
        text_windows(minilm, 64),
        text_samples(minilm, 64),
        haystack_windows(minilm, 64, 4),
    ):
        assert all(n == 64 for n in batch.lengths)
        assert (batch.tokens[:, 0] == tok.cls_token_id).all()
        assert (batch.tokens[:, -1] == tok.sep_token_id).all()
        assert (
            (batch.tokens[:, 1:-1] == tok.cls_token_id)
            | (batch.tokens[:, 1:-1] == tok.sep_token_id)
        ).sum() == 0
    assert special_frame(tiny.tokenizer) == ([], [])
    ids = tiny.tokenizer(haystack_text(), add_special_tokens=False)["input_ids"]
    got = haystack_windows(tiny, 32, 3).tokens.tolist()
    assert got == [ids[i * 32 : (i + 1) * 32] for i in range(3)]
