"""attention_stats: every statistic of every backend against the dense reference (random
inputs, odd lengths, GQA 1 and 3, causal or not, padding), hand-computed cases, and the
pattern-based oracles of interp.stats.dense / interp.heads.anchor.

The triton backend runs in Triton's interpreter here (no GPU in CI): small shapes, fp32."""

from __future__ import annotations

import math

import pytest
import torch

from interp.errors import InputError
from interp.heads.anchor import fai as fai_from_pattern
from interp.heads.anchor import waad as waad_from_pattern
from interp.stats.dense import sink_scores
from interp.stats.streaming import attention_stats

FIELDS = [
    "lse",
    "entropy",
    "expected_position",
    "mean_distance",
    "waad",
    "sink_mass",
    "argmax",
    "col_sum",
    "fai_sum",
]
BACKENDS = ["torch", "triton"]


def _inputs(b, hq, hkv, n, d, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, n, d, generator=g)
    k = torch.randn(b, hkv, n, d, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    if pad and b > 1:
        mask[1, n - n // 3 :] = False  # right padding on the second prompt
    return q, k, mask


def _assert_close(got, ref, atol=2e-5):
    for f in FIELDS:
        a, r = getattr(got, f), getattr(ref, f)
        if f == "argmax":
            assert torch.equal(a, r), f
        else:
            torch.testing.assert_close(
                a, r, atol=atol * max(1.0, r.abs().max().item()), rtol=1e-4, msg=f
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("hq,hkv", [(2, 2), (6, 2)])
@pytest.mark.parametrize("n", [1, 17, 45])
def test_backend_matches_dense(backend, causal, hq, hkv, n):
    q, k, mask = _inputs(2, hq, hkv, n, 16, seed=n + hq)
    kw = dict(causal=causal, key_mask=mask, sink_tokens=3, fai_window=(2, 7))
    ref = attention_stats(q, k, backend="dense", **kw)
    got = attention_stats(q, k, backend=backend, chunk=5, **kw)
    _assert_close(got, ref)
    torch.testing.assert_close(got.sink_score, ref.sink_score)
    torch.testing.assert_close(got.fai, ref.fai, equal_nan=True)


@pytest.mark.parametrize("d", [8, 24])
def test_head_dims_that_are_not_powers_of_two(d):
    q, k, mask = _inputs(2, 3, 1, 21, d)
    ref = attention_stats(q, k, key_mask=mask, backend="dense")
    _assert_close(attention_stats(q, k, key_mask=mask, backend="triton"), ref)


def test_argmax_takes_first_index_on_ties_every_backend():
    q = torch.zeros(1, 1, 20, 16)  # all scores 0: every visible key ties
    k = torch.randn(1, 1, 20, 16)
    for backend in ["dense", *BACKENDS]:
        s = attention_stats(q, k, backend=backend)
        assert s.argmax[0, 0].tolist() == [0] * 20
        s = attention_stats(q, k, causal=False, backend=backend)
        assert s.argmax[0, 0].tolist() == [0] * 20


@pytest.mark.parametrize("backend", ["dense", *BACKENDS])
def test_uniform_attention_hand_computed(backend):
    """q = 0 makes causal attention uniform over keys 0..t: everything has a closed form."""
    n = 33
    s = attention_stats(torch.zeros(1, 1, n, 16), torch.randn(1, 1, n, 16), backend=backend)
    t = torch.arange(n, dtype=torch.float32)
    torch.testing.assert_close(s.entropy[0, 0], torch.log(t + 1))
    torch.testing.assert_close(s.lse[0, 0], torch.log(t + 1))
    torch.testing.assert_close(s.expected_position[0, 0], t / 2)
    torch.testing.assert_close(s.mean_distance[0, 0], t / 2)
    torch.testing.assert_close(s.sink_mass[0, 0], 1 / (t + 1))
    waad = torch.tensor([sum(min(d, 10) for d in range(int(x) + 1)) / (x + 1) for x in t])
    torch.testing.assert_close(s.waad[0, 0], waad)
    col = torch.tensor([sum(1 / (i + 1) for i in range(j, n)) for j in range(n)])
    torch.testing.assert_close(s.col_sum[0, 0], col, rtol=1e-5, atol=1e-5)
    assert s.col_count[0].tolist() == [n - j for j in range(n)]


def test_sink_and_fai_match_pattern_oracles():
    """Independent oracles that read the full pattern: s_j (stats.dense) and FAI/WAAD (anchor)."""
    q, k, _ = _inputs(1, 3, 3, 40, 16, pad=False)
    a = torch.softmax(
        (q @ k.transpose(-1, -2) / 4).masked_fill(~torch.ones(40, 40).tril().bool(), -math.inf), -1
    )
    st = attention_stats(q, k, backend="torch", chunk=7)
    torch.testing.assert_close(st.sink_score, sink_scores(a, [40]), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(st.fai, fai_from_pattern(a), rtol=1e-4, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(st.waad, waad_from_pattern(a), rtol=1e-4, atol=1e-5)


def test_low_precision_inputs_accumulate_in_fp32():
    q, k, mask = _inputs(2, 3, 3, 50, 16)
    ref = attention_stats(
        q.bfloat16().float(), k.bfloat16().float(), key_mask=mask, backend="dense"
    )
    got = attention_stats(q.bfloat16(), k.bfloat16(), key_mask=mask, backend="torch", chunk=8)
    assert got.entropy.dtype == torch.float32
    _assert_close(got, ref, atol=1e-4)


def test_padded_rows_are_empty():
    q, k, mask = _inputs(2, 2, 2, 12, 16)
    s = attention_stats(q, k, key_mask=mask, backend="torch")
    assert (s.argmax[1, :, 8:] == -1).all() and (s.entropy[1, :, 8:] == 0).all()
    assert (s.col_sum[1, :, 8:] == 0).all() and (s.col_count[1, 8:] == 0).all()


@pytest.mark.parametrize(
    "q_shape,k_shape,kw,match",
    [
        ((1, 2, 5, 16), (1, 2, 5), {}, "batch, heads, n, d"),
        ((1, 3, 5, 16), (1, 2, 5, 16), {}, "multiple"),
        ((1, 2, 5, 16), (1, 2, 6, 16), {}, "does not match"),
        ((1, 2, 5, 16), (1, 2, 5, 16), {"backend": "cuda"}, "unknown backend"),
        ((1, 2, 5, 16), (1, 2, 5, 16), {"window": 0}, "window"),
        (
            (1, 2, 5, 16),
            (1, 2, 5, 16),
            {"key_mask": torch.ones(2, 5, dtype=torch.bool)},
            "key_mask",
        ),
    ],
)
def test_bad_input_is_a_clear_error(q_shape, k_shape, kw, match):
    with pytest.raises(InputError, match=match):
        attention_stats(torch.randn(q_shape), torch.randn(k_shape), **kw)


@pytest.mark.parametrize(
    "causal,pad,window,sink_tokens,fai_window",
    [
        (True, False, 10, 1, (10, 100)),
        (True, True, 3, 20, (0, 40)),
        (True, True, 40, 0, (20, 25)),
        (False, True, 10, 1, (10, 100)),
        (False, False, 3, 20, (0, 40)),
        (False, True, 40, 0, (20, 25)),
    ],
)
def test_triton_tile_modes_match_dense(causal, pad, window, sink_tokens, fai_window):
    """n = 100 with the interpreter's 16 x 16 tiles: key tiles far below the band (no mask,
    distances from tile sums), in the band and, bidirectional, far above it; FAI windows that
    hold whole tiles, cut tiles and miss tiles; sink keys spanning two tiles; no key mask, or
    right padding on one prompt and left padding (key 0 padded) on the other."""
    q, k, mask = _inputs(2, 4, 2, 100, 16, seed=window, pad=pad)
    if pad:
        mask[0, :7] = False
    kw = dict(causal=causal, window=window, sink_tokens=sink_tokens, fai_window=fai_window)
    ref = attention_stats(q, k, key_mask=mask, backend="dense", **kw)
    got = attention_stats(q, k, key_mask=mask, backend="triton", **kw)
    _assert_close(got, ref)
    torch.testing.assert_close(got.fai, ref.fai, equal_nan=True)


def test_triton_distances_stay_exact_far_from_the_start():
    """Mean distance of a previous-token-like head at positions ~600: the far-tile formula
    (t - start) * sum p - sum p * (j - start) must not cancel away the distance of 1."""
    n, d = 640, 32
    g = torch.Generator().manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    q = 200 * torch.roll(k, 1, 0)  # q_t = 200 k_{t-1}: a sharp previous-token head
    q, k = q.reshape(1, 1, n, d), k.reshape(1, 1, n, d)
    ref = attention_stats(q, k, backend="dense")
    got = attention_stats(q, k, backend="triton")
    torch.testing.assert_close(got.mean_distance, ref.mean_distance, atol=2e-3, rtol=1e-4)
    assert ref.mean_distance[0, 0, 300:].mean() < 1.01  # the case is the intended sharp one


@pytest.mark.parametrize("causal", [True, False])
def test_pair_weights_equal_dense_pattern_entries(causal):
    from interp.stats.streaming import pair_weights

    q, k, _ = _inputs(1, 6, 2, 30, 16, pad=False)
    st = attention_stats(q, k, causal=causal, backend="torch")
    kx = k.repeat_interleave(3, dim=1)
    s = q @ kx.transpose(-1, -2) / 4
    if causal:
        s = s.masked_fill(~torch.ones(30, 30).tril().bool(), -math.inf)
    a = torch.softmax(s, -1)
    t = torch.tensor([5, 29, 29, 12, 0])
    j = torch.tensor([4, 0, 29, 3, 0])
    got = pair_weights(q, k, st.lse, t, j, chunk=2)
    torch.testing.assert_close(got, a[:, :, t, j], rtol=1e-5, atol=1e-7)


def test_group_size_hand_cases():
    from interp.kernels.attention_stats import group_size

    # largest power of two dividing rep, at most 128 tile rows
    assert [group_size(rep, 16) for rep in (1, 2, 3, 4, 6, 8, 12)] == [1, 2, 1, 4, 2, 8, 4]
    assert group_size(8, 64) == 2 and group_size(4, 128) == 1 and group_size(16, 32) == 4


@pytest.mark.parametrize("causal", [True, False])
def test_triton_four_query_heads_per_program_match_dense(causal):
    """8 query heads on 2 kv heads: pass 1 runs 4 heads per program in the interpreter (64-row
    tiles mixing heads); padding on both sides."""
    q, k, mask = _inputs(2, 8, 2, 70, 16, seed=4)
    mask[0, :5] = False
    kw = dict(causal=causal, key_mask=mask, sink_tokens=2, fai_window=(3, 30))
    _assert_close(
        attention_stats(q, k, backend="triton", **kw), attention_stats(q, k, backend="dense", **kw)
    )


@pytest.mark.parametrize("scale", [-0.3, 0.0])
def test_triton_scales_that_are_not_positive_match_dense(scale):
    """The kernels take row maxima of unscaled scores (scale folded into the exponent), so the
    launcher turns a negative scale into q -> -q and a zero scale into uniform scores; the
    dense reference applies the scale directly (argmax of a constant row: the first key)."""
    q, k, mask = _inputs(2, 4, 2, 23, 16, seed=7)
    kw = dict(causal=True, key_mask=mask, scale=scale, sink_tokens=2, fai_window=(1, 5))
    _assert_close(
        attention_stats(q, k, backend="triton", **kw), attention_stats(q, k, backend="dense", **kw)
    )


@pytest.mark.parametrize("w", [1, 4, 9])
def test_sliding_window_matches_a_hand_masked_softmax(w):
    """Mistral's rule: query t sees key j only when 0 <= t - j < W. Dense and torch backends
    equal a softmax masked by hand; the query counts are the visible queries per key."""
    q, k, mask = _inputs(2, 6, 2, 23, 16, seed=w)
    n = q.shape[2]
    kw = dict(key_mask=mask, sliding_window=w, fai_window=(1, 6))
    ref = attention_stats(q, k, backend="dense", **kw)
    got = attention_stats(q, k, backend="torch", chunk=5, **kw)
    _assert_close(got, ref)
    t, j = torch.arange(n)[:, None], torch.arange(n)[None]
    visible = (j <= t) & (t - j < w) & mask[:, None, None, :]
    s = (q @ k.repeat_interleave(3, 1).transpose(-1, -2)) / 4.0
    a = s.masked_fill(~visible, float("-inf")).softmax(-1).nan_to_num() * mask[:, None, :, None]
    torch.testing.assert_close(got.col_sum, a.sum(-2), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(got.entropy, torch.special.entr(a).sum(-1), atol=2e-5, rtol=1e-4)
    seen = (visible[:, 0] & mask[:, :, None]).sum(1).float()  # real queries that see j
    torch.testing.assert_close(got.col_count, seen)
    in_fai = ((t - j) >= 1) & ((t - j) <= 6)
    torch.testing.assert_close(
        got.fai_count, (visible[:, 0] & in_fai & mask[:, :, None]).sum(1).float()
    )
    with pytest.raises(InputError, match="triton"):
        attention_stats(q, k, backend="triton", sliding_window=w)
    with pytest.raises(InputError, match="causal"):
        attention_stats(q, k, causal=False, sliding_window=w)


def test_torch_backend_on_peaked_scores_and_reused_buffers_matches_dense():
    """Scores hundreds of units below the row max (a peaked head: the range where exp leaves
    its fast path, and where the torch backend's exp2 must still give exact zeros for masked
    keys), long enough for the FAI and WAAD key bands, with the score buffers kept between
    calls of different shapes (``reuse_workspace``, as a whole-model pass does)."""
    from interp.stats.streaming import reuse_workspace

    q, k, mask = _inputs(2, 6, 2, 150, 16, seed=11)
    q = 40 * q
    kw = dict(key_mask=mask, sink_tokens=2)
    with reuse_workspace():
        for n, causal in [(150, True), (60, False), (150, False), (37, True)]:
            args = (q[:, :, :n], k[:, :, :n])
            ref = attention_stats(
                *args, backend="dense", causal=causal, **{**kw, "key_mask": mask[:, :n]}
            )
            got = attention_stats(
                *args, backend="torch", causal=causal, chunk=32, **{**kw, "key_mask": mask[:, :n]}
            )
            _assert_close(got, ref, atol=5e-5)
    assert (ref.entropy[0] < 0.5).float().mean() > 0.5  # the case is the intended peaked one


@pytest.mark.parametrize("causal,sliding", [(True, None), (False, None), (True, 5)])
@pytest.mark.parametrize("fai_window", [(0, 3), (2, 7), (10, 100)])
def test_unpadded_query_counts_in_closed_form_equal_the_counted_ones(causal, sliding, fai_window):
    """Without a key mask the counts come in closed form (cached); they equal the counts of
    an all-real mask, for windows shorter and longer than the text."""
    from interp.stats.streaming import query_counts

    for n in (1, 6, 23):
        window = sliding if sliding is not None and n > sliding else None  # as attention_stats
        mask = torch.ones(2, n, dtype=torch.bool)
        col, fai = query_counts(mask, causal, fai_window, window)
        q, k = torch.randn(2, 2, n, 8), torch.randn(2, 2, n, 8)
        st = attention_stats(q, k, causal=causal, fai_window=fai_window, sliding_window=sliding)
        torch.testing.assert_close(st.col_count, col)
        torch.testing.assert_close(st.fai_count, fai)
