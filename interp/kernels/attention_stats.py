"""Attention statistics in two FlashAttention-style Triton passes (shared/methods.md s. 7).

Pass 1, one program per (query block, batch x query head): stream over key blocks with an online
softmax, keeping per row the running max m, the normaliser l and rescaled sums of p * s, p * j,
p * |t - j|, p * min(|t - j|, W), p * [j < sink_tokens], and a running argmax (first index on
ties). At the end: lse = m + log l, entropy = lse - sum(p s) / l, the rest divided by l.

Pass 2, one program per (key block, batch x query head), no atomics: stream over query blocks,
recompute p = exp(s - lse) from the stored row LSE (the dK/dV loop of the Triton fused-attention
tutorial) and sum columns: attention received, and the part of it from queries with t - j in the
FAI window. Scores and sums are fp32 whatever the input dtype (fp32, bf16, fp16).

Grouped-query attention: query head h reads key head h // (q_heads / kv_heads).
"""

from __future__ import annotations

import torch

from interp.kernels import use_interpreter

INTERPRET = use_interpreter()  # must run before triton.jit decorates the kernels

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

if INTERPRET and not isinstance(tl.zeros, triton.runtime.interpreter.InterpretedFunction):
    raise ImportError(
        "Triton was imported before interp without TRITON_INTERPRET=1 on a machine without a "
        "CUDA GPU, so its kernels cannot run. Import interp first, or set TRITON_INTERPRET=1 in "
        "the environment."
    )

NEG = -1.0e30  # finite "minus infinity": keeps exp() of fully masked tiles at 0, never NaN


@triton.jit
def _tile(X, MASK, base, mask_base, idx, n, stride, D: tl.constexpr):
    """Rows ``idx`` of a [n, D] matrix at ``X + base`` (0 outside), and which are real tokens."""
    inside = idx < n
    x = tl.load(
        X + base + idx[:, None] * stride + tl.arange(0, D)[None, :],
        mask=inside[:, None],
        other=0.0,
    )
    real = tl.load(MASK + mask_base + idx, mask=inside, other=0) != 0
    return x, real & inside


@triton.jit
def _row_stats_kernel(
    Q, K, MASK, LSE, ENT, EPOS, DIST, WAAD, SINK, ARG,
    sqb, sqh, sqn, skb, skh, skn, smb, sob, soh,
    n, scale, rep, n_heads, window, sink_tokens,
    CAUSAL: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    kvh = h // rep
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_in = rows < n
    q, row_real = _tile(Q, MASK, b * sqb + h * sqh, b * smb, rows, n, sqn, D)
    m = tl.full([BLOCK_M], NEG, tl.float32)
    ll = tl.zeros([BLOCK_M], tl.float32)
    a_s = tl.zeros([BLOCK_M], tl.float32)
    a_pos = tl.zeros([BLOCK_M], tl.float32)
    a_dist = tl.zeros([BLOCK_M], tl.float32)
    a_w = tl.zeros([BLOCK_M], tl.float32)
    a_sink = tl.zeros([BLOCK_M], tl.float32)
    best = tl.full([BLOCK_M], NEG, tl.float32)
    best_i = tl.zeros([BLOCK_M], tl.int32)
    hi = n
    if CAUSAL:
        hi = tl.minimum((pid_m + 1) * BLOCK_M, n)
    for start in range(0, hi, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        k, key_real = _tile(K, MASK, b * skb + kvh * skh, b * smb, cols, n, skn, D)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
        vis = key_real[None, :] & (rows[:, None] >= 0)
        if CAUSAL:
            vis = vis & (cols[None, :] <= rows[:, None])
        s = tl.where(vis, s, NEG)
        m_new = tl.maximum(m, tl.max(s, axis=1))
        alpha = tl.exp(m - m_new)
        p = tl.where(vis, tl.exp(s - m_new[:, None]), 0.0)
        d = tl.abs(rows[:, None] - cols[None, :]).to(tl.float32)
        ll = ll * alpha + tl.sum(p, axis=1)
        a_s = a_s * alpha + tl.sum(p * s, axis=1)
        a_pos = a_pos * alpha + tl.sum(p * cols[None, :].to(tl.float32), axis=1)
        a_dist = a_dist * alpha + tl.sum(p * d, axis=1)
        a_w = a_w * alpha + tl.sum(p * tl.minimum(d, window), axis=1)
        a_sink = a_sink * alpha + tl.sum(tl.where(cols[None, :] < sink_tokens, p, 0.0), axis=1)
        m = m_new
        bmax = tl.max(s, axis=1)
        bidx = tl.min(tl.where(s == bmax[:, None], cols[None, :], 2147483647), axis=1)
        better = bmax > best
        best_i = tl.where(better, bidx, best_i)
        best = tl.where(better, bmax, best)
    inv = tl.where(ll > 0, 1.0 / ll, 0.0)
    keep = row_real & row_in
    lse = tl.where(keep, m + tl.log(tl.where(ll > 0, ll, 1.0)), 0.0)
    o = b * sob + h * soh + rows
    tl.store(LSE + o, lse, mask=row_in)
    tl.store(ENT + o, tl.where(keep, lse - a_s * inv, 0.0), mask=row_in)
    tl.store(EPOS + o, tl.where(keep, a_pos * inv, 0.0), mask=row_in)
    tl.store(DIST + o, tl.where(keep, a_dist * inv, 0.0), mask=row_in)
    tl.store(WAAD + o, tl.where(keep, a_w * inv, 0.0), mask=row_in)
    tl.store(SINK + o, tl.where(keep, a_sink * inv, 0.0), mask=row_in)
    tl.store(ARG + o, tl.where(keep, best_i, -1), mask=row_in)


@triton.jit
def _col_stats_kernel(
    Q, K, MASK, LSE, COL, FAI,
    sqb, sqh, sqn, skb, skh, skn, smb, sob, soh,
    n, scale, rep, n_heads, fai_lo, fai_hi,
    CAUSAL: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    kvh = h // rep
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_in = cols < n
    k, key_real = _tile(K, MASK, b * skb + kvh * skh, b * smb, cols, n, skn, D)
    col = tl.zeros([BLOCK_N], tl.float32)
    fai = tl.zeros([BLOCK_N], tl.float32)
    lo = 0
    if CAUSAL:
        lo = (pid_n * BLOCK_N) // BLOCK_M * BLOCK_M
    for start in range(lo, n, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_in = rows < n
        q, row_real = _tile(Q, MASK, b * sqb + h * sqh, b * smb, rows, n, sqn, D)
        lse = tl.load(LSE + b * sob + h * soh + rows, mask=row_in, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
        vis = row_real[:, None] & key_real[None, :]
        if CAUSAL:
            vis = vis & (cols[None, :] <= rows[:, None])
        p = tl.where(vis, tl.exp(tl.where(vis, s - lse[:, None], NEG)), 0.0)
        col += tl.sum(p, axis=0)
        dt = rows[:, None] - cols[None, :]
        fai += tl.sum(tl.where((dt >= fai_lo) & (dt <= fai_hi), p, 0.0), axis=0)
    o = b * sob + h * soh + cols
    tl.store(COL + o, col, mask=col_in)
    tl.store(FAI + o, fai, mask=col_in)


def _blocks(n: int, d: int) -> tuple[int, int]:
    if INTERPRET:
        return 16, 16  # small tiles: the interpreter is slow
    return (64, 64) if d <= 64 else (32, 32)


def triton_attention_stats(q, k, causal, key_mask, scale, window, sink_tokens, fai_window):
    """Both passes; returns the dict of ``interp.stats.streaming.AttentionStats`` fields."""
    b, hq, n, d = q.shape
    d_pad = max(16, 1 << (d - 1).bit_length())
    if d_pad != d:  # zero-padding the head dim leaves every dot product unchanged
        q = torch.nn.functional.pad(q, (0, d_pad - d))
        k = torch.nn.functional.pad(k, (0, d_pad - d))
        d = d_pad
    if INTERPRET or q.dtype == torch.float32:
        # the interpreter's bf16/fp16 dot is wrong: compute in fp32 there
        q, k, precision = q.float().contiguous(), k.float().contiguous(), "ieee"
    else:
        q, k, precision = q.contiguous(), k.contiguous(), None  # bf16/fp16 MMA, fp32 accum
    mask = key_mask.to(torch.int8).contiguous()
    rep = hq // k.shape[1]
    f32 = dict(device=q.device, dtype=torch.float32)
    out = {
        name: torch.empty(b, hq, n, **f32)
        for name in ("lse", "entropy", "expected_position", "mean_distance", "waad", "sink_mass")
    }
    out["argmax"] = torch.empty(b, hq, n, device=q.device, dtype=torch.int32)
    out["col_sum"] = torch.empty(b, hq, n, **f32)
    out["fai_sum"] = torch.empty(b, hq, n, **f32)
    bm, bn = _blocks(n, d)
    strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2))
    so = (mask.stride(0), out["lse"].stride(0), out["lse"].stride(1))
    _row_stats_kernel[(triton.cdiv(n, bm), b * hq)](
        q, k, mask, out["lse"], out["entropy"], out["expected_position"], out["mean_distance"],
        out["waad"], out["sink_mass"], out["argmax"], *strides, *so,
        n, scale, rep, hq, float(window), sink_tokens,
        CAUSAL=causal, D=d, BLOCK_M=bm, BLOCK_N=bn, PRECISION=precision,
    )  # fmt: skip
    _col_stats_kernel[(triton.cdiv(n, bn), b * hq)](
        q, k, mask, out["lse"], out["col_sum"], out["fai_sum"], *strides, *so,
        n, scale, rep, hq, int(fai_window[0]), int(fai_window[1]),
        CAUSAL=causal, D=d, BLOCK_M=bm, BLOCK_N=bn, PRECISION=precision,
    )  # fmt: skip
    out["argmax"] = out["argmax"].long()
    return out
