"""Attention statistics in ONE Triton pass, given each row's log-sum-exp from the attention the
model runs anyway (``interp.stats.streaming``'s ``triton`` backend with ``lse=``; the statistics
are defined there, the two-pass kernels are ``interp.kernels.attention_stats``).

The model's own attention (torch's flash / cuDNN / memory-efficient SDPA ops) can return the
row log-sum-exp L_t of the scores it softmaxes. With it every attention weight is known at
once, A[t, j] = 2^(s'_tj - L'_t) (s' = scale log2(e) q.k, L' = L log2(e)), so no online
softmax and no second pass are needed: one program per (query block, batch x query head group)
streams over key tiles with one q k^T and one exp2 per pair and

- adds the row statistics as plain sums (no running-max rescaling): sum A s (entropy =
  L sum A - scale sum A s), sum A j, sum A |t - j|, sum A min(|t - j|, W), the sink mass;
- keeps the running raw-score max and its first index (argmax); the index search runs only on
  tiles where some row's max grows (a scalar branch per tile: the max alone is one reduction);
- adds each tile's column sums (and the FAI part of them: the rows with t - j in the window)
  into the output with atomic adds (one [heads in group, BLOCK_N] vector per tile). Atomics
  make the last bits of the column sums depend on the order programs finish; ``deterministic``
  in the launcher computes them instead with the two-pass column kernel from the given LSE
  (no atomics, bitwise repeatable, one more q k^T and exp per pair).

The tile modes of the two-pass kernels are kept (only the band near the diagonal pays for the
causal mask and |t - j|). The weights are the model's own (exp(s - its L)): the row sums
sum_j A[t, j] are returned too (1 up to the rounding of L), and the launcher can check them
(``check_lse``) to refuse an L that does not belong to these q and k.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import no_type_check

import torch

from interp.errors import InputError
from interp.kernels import use_interpreter

INTERPRET = use_interpreter()  # must run before triton.jit decorates the kernels

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from interp.kernels.attention_stats import (  # noqa: E402
    _ALIGNABLE,
    _BIG,
    _LN2,
    _NEG,
    _TORCH_TO_TRITON,
    AUTOTUNE_MAX_BUCKET,
    HEAD_DIMS,
    LOG2E,
    _col_stats,
    autotune,
    gpu_configs,
    group_rows,
    group_size,
    key_tile_ranges,
    launch,
    padded_head_dim,
    row_accumulators,
)

#: the row outputs, in the order of the launcher's one output buffer
ROW_NAMES = ("entropy", "expected_position", "mean_distance", "waad", "sink_mass", "row_mass")


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _fused_tile(
    q, K, MASK, COL, FAI, k_base, m_base, c_base, start, rows, lse2, m0, n, skn, soh,
    scale2, window, sink_tokens, fai_lo, fai_hi,
    m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
    MODE: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
    COLUMNS: tl.constexpr, TRIM: tl.constexpr,
):  # fmt: skip
    """One key tile. MODE 0: every pair has t - j >= W; 1: the band; 2: every j - t >= W."""
    jl = tl.arange(0, BLOCK_N)
    cols = start + jl
    col_in = cols < n
    k = tl.load(
        K + k_base + cols[:, None] * skn + tl.arange(0, D)[None, :],
        mask=col_in[:, None],
        other=0.0,
    )
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # raw scores
    if HAS_MASK:
        key_ok = col_in & (tl.load(MASK + m_base + cols, mask=col_in, other=0) != 0)
    else:
        key_ok = col_in
    vis = key_ok[None, :] & (rows[:, None] >= 0)
    if CAUSAL and MODE == 1:
        vis = vis & (cols[None, :] <= rows[:, None])
    if HAS_MASK or MODE != 0:
        s = tl.where(vis, s, _NEG)
    if TRIM:  # the index search only on tiles where some row's max grows (a scalar branch)
        t_max = tl.max(s, axis=1)
        if tl.max(t_max - m_raw, axis=0) > 0:
            _, t_arg = tl.max(s, axis=1, return_indices=True, return_indices_tie_break_left=True)
            best_i = tl.where(t_max > m_raw, start + t_arg, best_i)
    else:
        t_max, t_arg = tl.max(s, axis=1, return_indices=True, return_indices_tie_break_left=True)
        best_i = tl.where(t_max > m_raw, start + t_arg, best_i)
    m_raw = tl.maximum(m_raw, t_max)
    p = tl.exp2(s * scale2 - lse2[:, None])  # the model's weights: 0 on rows with L = BIG
    if HAS_MASK or MODE != 0:
        p = tl.where(vis, p, 0.0)
    lt = tl.sum(p, axis=1)
    pj = tl.sum(p * jl[None, :].to(tl.float32), axis=1)  # sum p * (j - start)
    l_sum += lt
    a_s += tl.sum(p * s, axis=1)
    a_pos += start * lt + pj
    rel = (rows - start).to(tl.float32)  # t - start
    if MODE == 0:
        a_dist += rel * lt - pj
        a_w += window * lt
    elif MODE == 2:
        a_dist += pj - rel * lt
        a_w += window * lt
    else:
        d = tl.abs(rows[:, None] - cols[None, :]).to(tl.float32)
        a_dist += tl.sum(p * d, axis=1)
        a_w += tl.sum(p * tl.minimum(d, window), axis=1)
    if start < sink_tokens:
        a_sink += tl.sum(tl.where(cols[None, :] < sink_tokens, p, 0.0), axis=1)
    if COLUMNS:  # column sums of this tile, per query head of the group: [GROUP, BLOCK_N]
        g = tl.arange(0, GROUP)
        c_off = c_base + g[:, None] * soh + cols[None, :]
        c_ok = (g[:, None] >= 0) & col_in[None, :]
        colp = tl.sum(tl.reshape(p, (GROUP, BLOCK_M, BLOCK_N)), axis=1)
        tl.atomic_add(COL + c_off, colp, mask=c_ok, sem="relaxed")
        dt_min = m0 - (start + BLOCK_N - 1)  # smallest and largest t - j in this tile
        dt_max = m0 + BLOCK_M - 1 - start
        if (dt_min >= fai_lo) & (dt_max <= fai_hi):
            tl.atomic_add(FAI + c_off, colp, mask=c_ok, sem="relaxed")
        elif (dt_max >= fai_lo) & (dt_min <= fai_hi):
            dt = rows[:, None] - cols[None, :]
            pw = tl.where((dt >= fai_lo) & (dt <= fai_hi), p, 0.0)
            fp = tl.sum(tl.reshape(pw, (GROUP, BLOCK_M, BLOCK_N)), axis=1)
            tl.atomic_add(FAI + c_off, fp, mask=c_ok, sem="relaxed")
    return m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _fused_stats_kernel(
    Q, K, MASK, LSE2, ROWS, ARG, COL, FAI,
    sqb, sqh, sqn, skb, skh, skn, smb, sob, soh, so_kind,
    n, n_bucket, scale2, rep, n_heads, window, sink_tokens, fai_lo, fai_hi,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, GROUP: tl.constexpr, COLUMNS: tl.constexpr,
    TRIM: tl.constexpr,
):  # fmt: skip
    b, h0, m0, hr, rows, row_in, q = group_rows(Q, sqb, sqh, sqn, n, n_heads, D, BLOCK_M, GROUP)
    o = b * sob + hr * soh + rows
    lse2 = tl.load(LSE2 + o, mask=row_in, other=_BIG)  # the launcher puts BIG on padded rows
    k_base = b * skb + (h0 // rep) * skh
    m_base = b * smb
    c_base = b * sob + h0 * soh
    m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = row_accumulators(GROUP * BLOCK_M)
    lo, hi, end = key_tile_ranges(m0, n, window, CAUSAL, BLOCK_M, BLOCK_N)
    for start in range(0, lo, BLOCK_N):
        m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _fused_tile(
            q, K, MASK, COL, FAI, k_base, m_base, c_base, start, rows, lse2, m0, n, skn, soh,
            scale2, window, sink_tokens, fai_lo, fai_hi,
            m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            0, CAUSAL, HAS_MASK, D, BLOCK_M, BLOCK_N, GROUP, PRECISION, COLUMNS, TRIM,
        )  # fmt: skip
    for start in range(lo, hi, BLOCK_N):
        m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _fused_tile(
            q, K, MASK, COL, FAI, k_base, m_base, c_base, start, rows, lse2, m0, n, skn, soh,
            scale2, window, sink_tokens, fai_lo, fai_hi,
            m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            1, CAUSAL, HAS_MASK, D, BLOCK_M, BLOCK_N, GROUP, PRECISION, COLUMNS, TRIM,
        )  # fmt: skip
    for start in range(hi, end, BLOCK_N):
        m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _fused_tile(
            q, K, MASK, COL, FAI, k_base, m_base, c_base, start, rows, lse2, m0, n, skn, soh,
            scale2, window, sink_tokens, fai_lo, fai_hi,
            m_raw, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            2, CAUSAL, HAS_MASK, D, BLOCK_M, BLOCK_N, GROUP, PRECISION, COLUMNS, TRIM,
        )  # fmt: skip
    keep = row_in & (lse2 < _BIG) & (l_sum > 0)
    # entropy = -sum A ln A = ln 2 (L' sum A - scale2 sum A s)
    ent = (lse2 * l_sum - a_s * scale2) * _LN2
    tl.store(ROWS + o, tl.where(keep, ent, 0.0), mask=row_in)
    tl.store(ROWS + so_kind + o, tl.where(keep, a_pos, 0.0), mask=row_in)
    tl.store(ROWS + 2 * so_kind + o, tl.where(keep, a_dist, 0.0), mask=row_in)
    tl.store(ROWS + 3 * so_kind + o, tl.where(keep, a_w, 0.0), mask=row_in)
    tl.store(ROWS + 4 * so_kind + o, tl.where(keep, a_sink, 0.0), mask=row_in)
    tl.store(ROWS + 5 * so_kind + o, tl.where(keep, l_sum, 0.0), mask=row_in)
    tl.store(ARG + o, tl.where(keep, best_i, -1), mask=row_in)


# every autotune trial adds into COL / FAI: reset to zero before each and after tuning
_fused_stats = autotune("row", ("COLUMNS",), reset_to_zero=["COL", "FAI"])(
    triton.heuristics({"GROUP": lambda a: group_size(a["rep"], a["BLOCK_M"])})(_fused_stats_kernel)
)


def fused_attention_stats(
    q, k, lse, causal, key_mask, scale, window, sink_tokens, fai_window,
    padded: bool | None = None, deterministic: bool = False, check_lse: bool = False,
):  # fmt: skip
    """One pass given the row log-sum-exp ``lse`` [batch, q_heads, n] (natural log, of
    ``scale * q k^T`` under the same mask); returns the dict of ``AttentionStats`` fields.

    ``deterministic``: column sums from the two-pass column kernel (no atomics) instead of
    the fused pass's atomic adds. ``check_lse``: refuse an ``lse`` whose weights do not sum to
    1 on every real row (a host-device sync; the capture path, which takes L from the same
    q and k, leaves it off)."""
    b, hq, n, d = q.shape
    if tuple(lse.shape) != (b, hq, n):
        raise InputError(f"lse must be [batch, q_heads, n] = {(b, hq, n)}, got {tuple(lse.shape)}")
    if scale <= 0:  # the kernel keeps the max of the unscaled scores: needs scale > 0
        q, scale = (-q, -scale) if scale < 0 else (torch.zeros_like(q), 1.0)
    if not INTERPRET and not q.is_cuda:
        raise InputError(
            "the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 on a machine without "
            "a GPU); use backend='torch' for CPU tensors"
        )
    d_pad = padded_head_dim(d)
    if d_pad != d:
        q = torch.nn.functional.pad(q, (0, d_pad - d))
        k = torch.nn.functional.pad(k, (0, d_pad - d))
    if INTERPRET or q.dtype == torch.float32:
        q, k, precision = q.float().contiguous(), k.float().contiguous(), "ieee"
    else:
        q, k, precision = q.contiguous(), k.contiguous(), None
    has_mask = not bool(key_mask.all()) if padded is None else padded
    mask = key_mask.to(torch.int8).contiguous()
    lse2 = lse.float() * LOG2E
    if has_mask:
        lse2 = torch.where(key_mask[:, None, :], lse2, float(_BIG.value))
    lse2 = lse2.contiguous()
    rep = hq // k.shape[1]
    f32 = dict(device=q.device, dtype=torch.float32)
    rows = torch.empty(len(ROW_NAMES), b, hq, n, **f32)  # one buffer for every row output
    cols = torch.zeros(2, b, hq, n, **f32)  # column sums and their FAI part (atomics add in)
    arg = torch.empty(b, hq, n, device=q.device, dtype=torch.int32)
    strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2))
    so = (mask.stride(0), lse2.stride(0), lse2.stride(1), rows.stride(0))
    n_bucket = min(1 << max(n - 1, 0).bit_length(), AUTOTUNE_MAX_BUCKET)
    scale2 = scale * LOG2E
    common = dict(CAUSAL=causal, HAS_MASK=has_mask, D=d_pad, PRECISION=precision)
    fai_lo, fai_hi = int(fai_window[0]), int(fai_window[1])
    key = (n_bucket, d_pad, causal, has_mask, q.dtype)
    launch(
        _fused_stats, (*key, not deterministic),
        lambda meta: (triton.cdiv(n, meta["BLOCK_M"]), b * hq // meta["GROUP"]),
        q, k, mask, lse2, rows, arg, cols[0], cols[1], *strides, *so,
        n, n_bucket, scale2, rep, hq, int(window), sink_tokens, fai_lo, fai_hi,
        COLUMNS=not deterministic, **common,
    )  # fmt: skip
    if deterministic:
        launch(
            _col_stats, key, lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), b * hq),
            q, k, mask, lse2, cols[0], cols[1], *strides, *so[:3],
            n, n_bucket, scale2, rep, hq, fai_lo, fai_hi, **common,
        )  # fmt: skip
    if check_lse:
        real = key_mask[:, None, :].expand(b, hq, n)
        worst = (rows[-1] - 1).abs()[real].max() if bool(real.any()) else torch.tensor(0.0)
        if float(worst) > 1e-2:
            raise InputError(
                f"the given lse does not belong to these q and k: its weights sum to 1 +- "
                f"{float(worst):.3g} on some row (expected 1). Pass the row log-sum-exp of "
                "scale * q k^T under the same mask (or no lse: two passes compute it)"
            )
    out = dict(zip(ROW_NAMES, rows, strict=True))
    del out["row_mass"]
    out["lse"] = torch.where(key_mask[:, None, :], lse.float(), 0.0) if has_mask else lse.float()
    out["argmax"] = arg.long()
    out["col_sum"], out["fai_sum"] = cols[0], cols[1]
    return out


def compile_variants() -> Iterator[
    tuple[str, object, dict[str, str], dict[str, object], dict[str, int], dict]
]:
    """Every specialisation of the fused kernel the launcher can produce on a GPU (the same
    product as ``interp.kernels.attention_stats.compile_variants`` for pass 1)."""
    from interp.kernels.attention_stats import _GROUPS_OF

    fn = _fused_stats_kernel
    for dtype, d, causal, has_mask, align in itertools.product(
        _TORCH_TO_TRITON, HEAD_DIMS, (True, False), (False, True), ("a16", "a1")
    ):
        t = _TORCH_TO_TRITON[dtype]
        sig = {"Q": f"*{t}", "K": f"*{t}", "MASK": "*i8", "LSE2": "*fp32", "ROWS": "*fp32",
               "ARG": "*i32", "COL": "*fp32", "FAI": "*fp32"}  # fmt: skip
        sig.update(
            {name: "fp32" if name == "scale2" else "i32" for name in fn.arg_names[len(sig) :]}
        )
        attrs = {
            (i,): [["tt.divisibility", 16]]
            for i, name in enumerate(fn.arg_names)
            if align == "a16"
            and name in sig
            and (sig[name][0] == "*" or name in _ALIGNABLE or name == "so_kind")
        }
        for (bm, bn, warps, stages), group in (
            (cfg, g) for cfg in gpu_configs("row", d, dtype.itemsize) for g in _GROUPS_OF[cfg[0]]
        ):
            const: dict[str, object] = dict(
                CAUSAL=causal, HAS_MASK=has_mask, D=d, BLOCK_M=bm, BLOCK_N=bn,
                PRECISION="ieee" if dtype == torch.float32 else None, GROUP=group,
                COLUMNS=not (causal and has_mask),  # both settings built, over the flags
                TRIM=causal != has_mask,  # likewise
            )  # fmt: skip
            label = (
                f"fused-{t}-d{d}-{'causal' if causal else 'bidir'}-"
                f"{'mask' if has_mask else 'nomask'}-{align}-{bm}x{bn}w{warps}s{stages}g{group}"
            )
            options = {"num_warps": warps, "num_stages": stages}
            yield label, fn, {**sig, **dict.fromkeys(const, "constexpr")}, const, options, attrs


__all__ = ["ROW_NAMES", "compile_variants", "fused_attention_stats"]
