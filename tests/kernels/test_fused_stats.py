"""The one-pass Triton statistics given each row's log-sum-exp (``attention_stats(..., lse=)``,
``interp.kernels.fused_stats``) against the dense reference, in Triton's interpreter (no GPU
in CI; fp32). The LSE comes from torch.logsumexp of the masked scores (the dense reference) or
from the attention op a model runs (torch's CPU flash kernel)."""

from __future__ import annotations

import pytest
import torch

from interp.errors import InputError
from interp.stats.streaming import attention_stats
from tests.stats.test_streaming import _assert_close, _inputs


def _both(q, k, **kw):
    ref = attention_stats(q, k, backend="dense", **kw)
    lse = ref.lse.clone()
    return ref, [
        attention_stats(q, k, backend="triton", lse=lse, deterministic=det, **kw)
        for det in (False, True)
    ]


@pytest.mark.parametrize(
    "causal,pad,window,sink_tokens,fai_window",
    [
        (True, False, 10, 1, (10, 100)),
        (True, True, 3, 20, (0, 40)),
        (False, True, 10, 1, (10, 100)),
        (False, False, 40, 0, (20, 25)),
    ],
)
def test_fused_tile_modes_match_dense(causal, pad, window, sink_tokens, fai_window):
    """n = 100 with 16 x 16 tiles: far, band and (bidirectional) far-above key tiles; FAI
    windows holding whole tiles, cutting tiles and missing tiles; sink keys over two tiles;
    left and right padding. Atomic column sums and the deterministic column pass alike."""
    q, k, mask = _inputs(2, 4, 2, 100, 16, seed=window, pad=pad)
    if pad:
        mask[0, :7] = False
    kw = dict(causal=causal, key_mask=mask, window=window, sink_tokens=sink_tokens,
              fai_window=fai_window)  # fmt: skip
    ref, got = _both(q, k, **kw)
    for g in got:
        _assert_close(g, ref)
        torch.testing.assert_close(g.fai, ref.fai, equal_nan=True)


@pytest.mark.parametrize("causal", [True, False])
def test_fused_four_query_heads_per_program_and_odd_head_dim(causal):
    """8 query heads on 2 kv heads (4 heads per program: the column sums are split per head
    inside the tile), head dim 24 (zero-padded to 32), padding on both sides."""
    q, k, mask = _inputs(2, 8, 2, 70, 24, seed=4)
    mask[0, :5] = False
    ref, got = _both(q, k, causal=causal, key_mask=mask, sink_tokens=2, fai_window=(3, 30))
    for g in got:
        _assert_close(g, ref)


def test_fused_equals_the_two_pass_kernels():
    q, k, _ = _inputs(1, 6, 3, 90, 16, seed=2, pad=False)
    two = attention_stats(q, k, backend="triton")
    one = attention_stats(q, k, backend="triton", lse=two.lse)
    _assert_close(one, two, atol=1e-5)


@pytest.mark.parametrize("scale", [-0.3, 0.0])
def test_fused_scales_that_are_not_positive(scale):
    q, k, mask = _inputs(2, 4, 2, 23, 16, seed=7)
    ref, got = _both(q, k, causal=True, key_mask=mask, scale=scale, sink_tokens=2)
    for g in got:
        _assert_close(g, ref)


def test_fused_argmax_first_index_on_ties_and_maxima_in_later_tiles():
    """Equal scores across tiles keep the first key; a row whose max is in its last tile gets
    that key (the index search runs only on tiles where some row's max grows)."""
    n, d = 40, 16
    k = torch.zeros(1, 1, n, d)
    k[0, 0, :, 0] = 1.0
    k[0, 0, 33, 0] = 3.0  # key 33 scores highest for rows that see it
    q = torch.zeros(1, 1, n, d)
    q[0, 0, :, 0] = 1.0
    ref, got = _both(q, k, causal=True)
    want = torch.where(torch.arange(n) >= 33, 33, 0)
    assert torch.equal(ref.argmax[0, 0], want)
    for g in got:
        assert torch.equal(g.argmax[0, 0], want)


def test_an_lse_of_other_scores_is_refused():
    q, k, _ = _inputs(1, 2, 2, 30, 16, pad=False)
    lse = attention_stats(q, k, backend="dense").lse
    with pytest.raises(InputError, match="does not belong"):
        attention_stats(q, k, backend="triton", lse=lse + 1.0)
    with pytest.raises(InputError, match=r"lse must be \[batch, q_heads, n\]"):
        attention_stats(q, k, backend="triton", lse=lse[..., :-1])


def test_fused_with_the_lse_of_torch_flash_attention():
    """The LSE the model's own attention returns (torch's CPU flash kernel, the op SDPA runs)
    gives the same statistics as the dense reference; bf16 inputs accumulate in fp32."""
    q, k, _ = _inputs(1, 4, 4, 64, 32, seed=3, pad=False)
    v = torch.randn_like(k)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, True, scale=32**-0.5
    )
    ref = attention_stats(q, k, backend="dense")
    _assert_close(attention_stats(q, k, backend="triton", lse=lse), ref)
    torch.testing.assert_close(out, torch.softmax(
        (q @ k.transpose(-1, -2) / 32**0.5).masked_fill(~torch.ones(64, 64).tril().bool(),
                                                       float("-inf")), -1) @ v)  # fmt: skip


def test_later_launches_skip_the_autotuner_and_give_the_same_result(monkeypatch):
    """The first launch of a key goes through the autotuner; later ones go straight to the
    kernel with the config it chose (``interp.kernels.attention_stats.launch``)."""
    from interp.kernels import attention_stats as ks
    from interp.kernels import fused_stats

    q, k, _ = _inputs(1, 4, 2, 33, 16, seed=5, pad=False)
    ks._CHOSEN.clear()
    first = attention_stats(q, k, backend="triton")
    first_fused = attention_stats(q, k, backend="triton", lse=first.lse)
    assert len(ks._CHOSEN) == 3  # pass 1, pass 2, the fused pass

    def refuse(*_a, **_kw):
        raise AssertionError("the autotuner ran again")

    for tuned in (ks._row_stats, ks._col_stats, fused_stats._fused_stats):
        monkeypatch.setattr(tuned, "run", refuse)
    _assert_close(attention_stats(q, k, backend="triton"), first, atol=0)
    _assert_close(attention_stats(q, k, backend="triton", lse=first.lse), first_fused, atol=0)


def test_both_argmax_strategies_match_dense(monkeypatch):
    """The autotuner chooses on a GPU between searching the argmax on every tile (TRIM False)
    and only on tiles where some row's max grows (TRIM True, the interpreter's default): the
    untrimmed kernels of pass 1 and of the fused pass are exact too."""
    import triton

    from interp.kernels import attention_stats as ks
    from interp.kernels import fused_stats

    untrimmed = triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "TRIM": False}, num_warps=4,
                              num_stages=1)  # fmt: skip
    for tuned in (ks._row_stats, fused_stats._fused_stats):
        monkeypatch.setattr(tuned, "configs", [untrimmed])
        monkeypatch.setattr(tuned, "cache", {})
    monkeypatch.setattr(ks, "_CHOSEN", {})
    q, k, mask = _inputs(2, 4, 2, 60, 16, seed=9)
    mask[0, :4] = False
    kw = dict(causal=True, key_mask=mask, sink_tokens=2, fai_window=(3, 30))
    ref = attention_stats(q, k, backend="dense", **kw)
    _assert_close(attention_stats(q, k, backend="triton", **kw), ref)
    _assert_close(attention_stats(q, k, backend="triton", lse=ref.lse, **kw), ref)
    assert (
        ks._row_stats.best_config is untrimmed and fused_stats._fused_stats.best_config is untrimmed
    )
