"""Anchor heads: span, WAAD, FAI and token selection on hand-built maps, and the real model
against a loop-by-loop reference computed from Hugging Face eager attention."""

from __future__ import annotations

import math

import pytest
import torch

from interp.errors import InputError
from interp.heads import get_detector
from interp.heads.anchor import (
    attention_span,
    fai,
    head_groups,
    middle_third,
    preplan_mask,
    top_fraction,
    waad,
)


def _prev_token_map(n: int) -> torch.Tensor:
    a = torch.zeros(n, n)
    a[0, 0] = 1.0
    for t in range(1, n):
        a[t, t - 1] = 1.0
    return a


def _first_token_map(n: int) -> torch.Tensor:
    a = torch.zeros(n, n)
    a[:, 0] = 1.0
    return a


def test_span_of_hand_built_maps():
    n = 20
    # previous-token head: distance 1 everywhere except t = 0 -> (n - 1) / n
    assert attention_span(_prev_token_map(n)).item() == pytest.approx((n - 1) / n)
    # first-token head: distance t -> mean of 0..n-1
    assert attention_span(_first_token_map(n)).item() == pytest.approx((n - 1) / 2)


def test_waad_clips_distance_at_w():
    n = 30
    w = waad(_first_token_map(n), window=10)
    assert w.tolist() == [float(min(t, 10)) for t in range(n)]
    w = waad(_prev_token_map(n), window=10)
    assert w[0] == 0 and (w[1:] == 1).all()


def test_fai_window_and_nan_tail():
    n, start, horizon = 40, 10, 15
    a = torch.rand(n, n).tril()
    a = a / a.sum(-1, keepdim=True)
    got = fai(a, start=start, horizon=horizon)
    for s in range(n):
        ts = [t for t in range(s + start, min(n - 1, s + horizon) + 1)]
        if ts:
            assert got[s].item() == pytest.approx(sum(a[t, s].item() for t in ts) / len(ts))
        else:
            assert math.isnan(got[s].item())
    assert torch.isnan(got[n - start :]).all() and not torch.isnan(got[: n - start]).any()


def test_preplan_and_anchor_selection():
    w = torch.tensor([0.0, 1.0, 3.0, 3.5, 0.0, 0.2, 0.25, 0.55, 1.15, 1.25])
    # |w_t - w_t+1|: 1, 2, 0.5, 3.5, 0.2, 0.05, 0.3, 0.6, 0.1 -> top 40 % of 9 = 4 positions
    assert preplan_mask(w).nonzero().flatten().tolist() == [0, 1, 3, 7]
    f = torch.tensor([3.0, float("nan"), 1.0, 2.0, 0.5])
    assert top_fraction(f, 0.5).tolist() == [True, False, False, True, False]


def test_groups_split_analysed_layers_by_span():
    span = torch.arange(12.0).reshape(4, 3)  # layer-major increasing spans
    groups = head_groups(span, layers=[1, 2])  # 6 candidate heads; 30 % -> 2 per group
    assert groups[0] == ["", "", ""] and groups[3] == ["", "", ""]
    assert groups[1] == ["local", "local", "middle"]
    assert groups[2] == ["middle", "global", "global"]
    assert middle_third(30) == list(range(10, 20))


def test_paper_layers_are_five_evenly_spaced_in_the_middle_third():
    from interp.heads.anchor import analysed_layers, paper_layers

    # [floor(L/3), floor(2L/3)], 5 points, halves rounded up
    assert paper_layers(30) == [10, 13, 15, 18, 20]
    assert paper_layers(32) == [10, 13, 16, 18, 21]
    assert paper_layers(24) == [8, 10, 12, 14, 16]
    assert paper_layers(6) == [2, 3, 4]  # fewer distinct layers than five
    assert analysed_layers(30, None) == analysed_layers(30, "paper") == paper_layers(30)
    assert analysed_layers(30, "middle_third") == list(range(10, 20))
    assert analysed_layers(30, [3, 4]) == [3, 4]
    with pytest.raises(InputError, match="layers"):
        analysed_layers(30, [30])
    with pytest.raises(InputError, match="paper"):
        analysed_layers(30, "all")


@pytest.mark.real_model
def test_anchor_detector_matches_loop_reference_on_smollm2(smol, smol_hf_reference):
    res = get_detector("anchor").run(smol, n_tokens=64, n_windows=1)
    hf, _ = smol_hf_reference
    from interp.inputs.text import haystack_windows

    ids = haystack_windows(smol, 64, 1).tokens
    with torch.no_grad():
        attn = hf(ids, output_attentions=True).attentions
    ht = res.extra["head_tokens"]
    for layer, head in [(0, 0), (12, 4), (29, 8)]:
        a = attn[layer][0, head].double()
        n = a.shape[0]
        span = sum(sum(a[t, s] * (t - s) for s in range(t + 1)) for t in range(n)) / n
        row = res.table[(res.table.layer == layer) & (res.table["head"] == head)].iloc[0]
        assert row.score == pytest.approx(float(span), rel=1e-4)
        sub = ht[(ht.layer == layer) & (ht["head"] == head)].sort_values("position")
        for t in (0, 5, 40, 63):
            ref = sum(a[t, s] * min(t - s, 10) for s in range(t + 1))
            assert sub.waad.iloc[t] == pytest.approx(float(ref), abs=1e-4)
        for s in (0, 7, 53):
            ts = range(s + 10, min(n - 1, s + 100) + 1)
            ref = sum(a[t, s] for t in ts) / len(ts)
            assert sub.fai.iloc[s] == pytest.approx(float(ref), abs=1e-5)
    # paper's layers (10, 13, 15, 18, 20): 45 heads, 30 % global, only in those layers
    assert res.table.label.sum() == round(0.3 * 5 * 9)
    assert set(res.table[res.table.label].layer) <= {10, 13, 15, 18, 20}
    assert res.inputs["layers"] == [10, 13, 15, 18, 20]
    tokens = res.extra["tokens"]
    assert tokens.anchor.sum() == round(0.4 * (64 - 10))


def test_span_without_sinks_leaves_the_parked_attention_out():
    """Half of every row parked on token 0, half on the previous token: the paper's span counts
    the parked half at distance t (large); without the sinks (key 0; late keys whose few
    queries give s_j > 0.1 are sinks too, and rows left with no attention are skipped) every
    remaining row reads distance 1. A head that only parks on token 0 has no span left."""
    from interp.stats.dense import span_without_sinks

    n = 32
    a = 0.5 * _first_token_map(n) + 0.5 * _prev_token_map(n)
    a[0, 0] = 1.0
    paper = sum(0.5 * t + 0.5 for t in range(1, n)) / n
    assert attention_span(a).item() == pytest.approx(paper)
    assert span_without_sinks(a).item() == pytest.approx(1.0)
    assert span_without_sinks(_first_token_map(n)).item() == 0.0
    # a far reader that is no sink: attends from t to t - 8 (s_j = 1 / (N - j) <= 0.1 early)
    far = torch.zeros(n, n)
    far[:8, 0] = 1.0
    for t in range(8, n):
        far[t, t - 8] = 1.0
    assert span_without_sinks(far).item() == pytest.approx(8.0)


def test_anchor_span_option_groups_by_the_chosen_span(tiny):
    paper = get_detector("anchor").run(tiny, n_tokens=64, n_windows=2, layers=(0, 1))
    free = get_detector("anchor").run(
        tiny, n_tokens=64, n_windows=2, layers=(0, 1), span="no_sinks"
    )
    t, f = paper.table, free.table
    assert t.score.equals(t.span_paper) and f.score.equals(f.span_no_sinks)
    assert t.span_no_sinks.equals(f.span_no_sinks)
    assert paper.inputs["span"] == "paper" and free.inputs["span"] == "no_sinks"
    assert f.sort_values("score").group.iloc[-1] == "global"
    with pytest.raises(InputError, match="span must be"):
        get_detector("anchor").run(tiny, span="far")


def test_summary_says_global_is_relative_when_no_head_reaches_far():
    import pandas as pd

    from interp.heads.anchor import AnchorDetector, W
    from interp.heads.base import DetectorResult

    def result(spans):
        table = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 1, 0], "score": spans,
                              "group": ["local", "middle", "global"]})  # fmt: skip
        return DetectorResult("anchor", table, {"layers": [0, 1]})

    near = AnchorDetector.summary(result([1.0, 2.0, W - 3.0]))
    assert "relative" in near and f"widest span {W - 3.0:.1f} tokens" in near
    far = AnchorDetector.summary(result([1.0, 2.0, W + 20.0]))
    assert "relative" not in far
