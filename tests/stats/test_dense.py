"""Dense reference statistics against hand-computed values."""

from __future__ import annotations

import math

import torch

from interp.stats.dense import head_summary, per_query_stats, sink_scores

# One head, 3 tokens, causal. Rows: t=0 [1,0,0]; t=1 [.5,.5,0]; t=2 [.2,.3,.5]
A = torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]]])


def test_per_query_stats_by_hand():
    s = per_query_stats(A)
    h2 = -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5))
    torch.testing.assert_close(s["entropy"][0, 0], torch.tensor([0.0, math.log(2), h2]))
    torch.testing.assert_close(s["prev_token_mass"][0, 0], torch.tensor([0.0, 0.5, 0.3]))
    torch.testing.assert_close(s["first_token_mass"][0, 0], torch.tensor([1.0, 0.5, 0.2]))
    # distances: t=1: .5*1 ; t=2: .2*2 + .3*1
    torch.testing.assert_close(s["mean_distance"][0, 0], torch.tensor([0.0, 0.5, 0.7]))


def test_sink_scores_by_hand():
    # s_j = sum_i A[i,j] / (N - j): s_0 = 1.7/3, s_1 = 0.8/2, s_2 = 0.5/1
    s = sink_scores(A, [3], causal=True)
    torch.testing.assert_close(s[0, 0], torch.tensor([1.7 / 3, 0.4, 0.5]))
    s_bi = sink_scores(A, [3], causal=False)
    torch.testing.assert_close(s_bi[0, 0], torch.tensor([1.7, 0.8, 0.5]) / 3)


def test_sink_scores_ignore_padding():
    padded = torch.zeros(1, 1, 5, 5)
    padded[..., :3, :3] = A
    torch.testing.assert_close(sink_scores(padded, [3])[0, 0, :3], sink_scores(A, [3])[0, 0])
    assert sink_scores(padded, [3])[0, 0, 3:].abs().sum() == 0


def test_head_summary_skips_first_query_and_padding():
    padded = torch.zeros(1, 1, 4, 4)
    padded[..., :3, :3] = A
    out = head_summary(padded, [3])
    assert out["n_queries"].item() == 2  # t = 1, 2
    torch.testing.assert_close(out["prev_token_mass"], torch.tensor([0.8]))
    torch.testing.assert_close(out["sink_score_0"], torch.tensor([1.7 / 3]))
