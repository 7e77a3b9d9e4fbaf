"""Attention statistics in two FlashAttention-style Triton passes (``interp.stats.streaming``'s
``triton`` backend; the statistics are defined there).

Pass 1 (``_row_stats_kernel``), one program per (query block, batch x query head): stream over
key blocks with an online softmax in base 2 (log2(e) folded into the scale, ``exp2``), keeping
per row the running max, the normaliser l_sum and rescaled sums of p * s, p * j, p * |t - j|,
p * min(|t - j|, W) and p * [j < sink_tokens], and a running argmax (first index on ties; the
index search runs only on tiles where some row's max grows, a scalar branch per tile).

Pass 2 (``_col_stats_kernel``), one program per (key block, batch x query head), no atomics:
stream over query blocks, recompute p = exp2(s - lse) from pass 1's row LSE and sum columns:
attention received, and the part of it from queries with t - j in the FAI window.

Per-tile work is split by where a tile lies (only the band near the diagonal pays for masks):
- pass 1, key tiles with every pair t - j >= W ("far below"): no causal mask, |t - j| = t - j and
  min(|t - j|, W) = W, so the tile needs only sum p and sum p * (j - tile start) (local offsets:
  no cancellation at 128k positions); far above (j - t >= W, bidirectional only) likewise;
  the sink sum is computed only on tiles that hold keys j < sink_tokens;
- pass 2, query tiles wholly below the diagonal need no causal mask, and the FAI window is
  applied per element only on tiles it cuts (a tile wholly inside adds its column sums);
- padding: without a key mask (the common case) no mask is loaded or applied off the band;
  padded query rows get LSE = +1e30 in pass 1, so pass 2 needs no row mask (exp2 gives 0).

Scores and sums are fp32 whatever the input dtype (fp32, bf16, fp16). Grouped-query attention:
query head h reads key head h // (q_heads / kv_heads); pass 1 stacks GROUP query heads of one kv
head in a program (``group_size``: the largest power of two dividing q_heads / kv_heads, at most
128 tile rows), so each key tile is loaded once per group. On a GPU both kernels are autotuned over
tile sizes, warps and stages per (head dim, context bucket, dtype); in the interpreter one small
config runs. ``compile_variants`` lists every specialisation the launcher can produce (the
compile test builds each for sm_80 and sm_90 with the real compiler).
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

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
HEAD_DIMS = (16, 32, 64, 128, 256)  # head dims are zero-padded up to one of these
_NEG = tl.constexpr(-1.0e30)  # finite "minus infinity": exp2 of masked scores is 0, never NaN
_BIG = tl.constexpr(1.0e30)  # LSE stored for a padded query row: exp2(s - _BIG) = 0
_LN2 = tl.constexpr(LN2)  # jit code reads only constexpr globals


# -- pass 1: per-query statistics ---------------------------------------------------------------


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _row_tile(
    q, K, MASK, k_base, m_base, start, rows, n, skn, scale2, window, sink_tokens,
    m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
    MODE: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, D: tl.constexpr,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, TRIM: tl.constexpr,
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
    # raw scores: scale2 > 0 (the launcher makes it so) is folded into the exponent's FMA, and
    # into the row max and the sum of p * s once per row
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
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
        t_max2 = tl.max(s, axis=1) * scale2  # log2 units
        if tl.max(t_max2 - m2, axis=0) > 0:
            _, t_arg = tl.max(s, axis=1, return_indices=True, return_indices_tie_break_left=True)
            best_i = tl.where(t_max2 > m2, start + t_arg, best_i)
    else:  # max and first index in one reduction on every tile
        t_max, t_arg = tl.max(s, axis=1, return_indices=True, return_indices_tie_break_left=True)
        t_max2 = t_max * scale2
        best_i = tl.where(t_max2 > m2, start + t_arg, best_i)
    m_new = tl.maximum(m2, t_max2)
    alpha = tl.exp2(m2 - m_new)
    p = tl.exp2(s * scale2 - m_new[:, None])
    if HAS_MASK or MODE != 0:
        p = tl.where(vis, p, 0.0)
    lt = tl.sum(p, axis=1)
    pj = tl.sum(p * jl[None, :].to(tl.float32), axis=1)  # sum p * (j - start)
    l_sum = l_sum * alpha + lt
    a_s = a_s * alpha + tl.sum(p * s, axis=1)  # raw units; times scale2 at the end
    a_pos = a_pos * alpha + (start * lt + pj)
    rel = (rows - start).to(tl.float32)  # t - start
    if MODE == 0:
        a_dist = a_dist * alpha + (rel * lt - pj)
        a_w = a_w * alpha + window * lt
    elif MODE == 2:
        a_dist = a_dist * alpha + (pj - rel * lt)
        a_w = a_w * alpha + window * lt
    else:
        d = tl.abs(rows[:, None] - cols[None, :]).to(tl.float32)
        a_dist = a_dist * alpha + tl.sum(p * d, axis=1)
        a_w = a_w * alpha + tl.sum(p * tl.minimum(d, window), axis=1)
    a_sink = a_sink * alpha
    if start < sink_tokens:
        a_sink += tl.sum(tl.where(cols[None, :] < sink_tokens, p, 0.0), axis=1)
    return m_new, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def group_rows(
    Q, sqb, sqh, sqn, n, n_heads,
    D: tl.constexpr, BLOCK_M: tl.constexpr, GROUP: tl.constexpr,
):  # fmt: skip
    """The program's GROUP query heads of one kv head (tile row r is head h0 + r // BLOCK_M at
    position m0 + r % BLOCK_M, so each key tile is loaded once for the whole group): batch b,
    first head h0, first position m0, each row's head and position, which rows exist, q."""
    pid_m = tl.program_id(0)
    bg = tl.program_id(1)
    b = (bg // (n_heads // GROUP)).to(tl.int64)
    h0 = (bg % (n_heads // GROUP)).to(tl.int64) * GROUP
    m0 = pid_m * BLOCK_M
    r = tl.arange(0, GROUP * BLOCK_M)
    hr = h0 + r // BLOCK_M  # query head of each tile row
    rows = m0 + r % BLOCK_M
    row_in = rows < n
    q = tl.load(
        Q + b * sqb + hr[:, None] * sqh + rows[:, None] * sqn + tl.arange(0, D)[None, :],
        mask=row_in[:, None],
        other=0.0,
    )
    return b, h0, m0, hr, rows, row_in, q


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def row_accumulators(ROWS: tl.constexpr):
    """The row kernels' per-row state: running max (raw or log2 units), the normaliser, the
    sums of p * s, p * j, p * |t - j|, p * min(|t - j|, W), the sink mass, and the argmax."""
    return (
        tl.full([ROWS], _NEG, tl.float32), tl.zeros([ROWS], tl.float32),
        tl.zeros([ROWS], tl.float32), tl.zeros([ROWS], tl.float32), tl.zeros([ROWS], tl.float32),
        tl.zeros([ROWS], tl.float32), tl.zeros([ROWS], tl.float32), tl.zeros([ROWS], tl.int32),
    )  # fmt: skip


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def key_tile_ranges(
    m0, n, window, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr
):  # fmt: skip
    """(lo, hi, end) of the query tile at m0: key tiles [0, lo) have every j <= m0 - W (far
    below), [lo, hi) are the band, [hi, end) have every j >= last row + W (far above)."""
    if CAUSAL:
        end = tl.minimum(m0 + BLOCK_M, n)
    else:
        end = n
    lo = (tl.maximum(m0 - window + 1, 0) // BLOCK_N) * BLOCK_N
    if CAUSAL:
        hi = end
    else:
        hi = tl.minimum(tl.cdiv(m0 + BLOCK_M - 1 + window, BLOCK_N) * BLOCK_N, end)
    return lo, hi, end


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _row_stats_kernel(
    Q, K, MASK, LSE2, ENT, EPOS, DIST, WAAD, SINK, ARG,
    sqb, sqh, sqn, skb, skh, skn, smb, sob, soh,
    n, n_bucket, scale2, rep, n_heads, window, sink_tokens,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr, GROUP: tl.constexpr, TRIM: tl.constexpr,
):  # fmt: skip
    b, h0, m0, hr, rows, row_in, q = group_rows(Q, sqb, sqh, sqn, n, n_heads, D, BLOCK_M, GROUP)
    k_base = b * skb + (h0 // rep) * skh
    m_base = b * smb
    m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = row_accumulators(GROUP * BLOCK_M)
    lo, hi, end = key_tile_ranges(m0, n, window, CAUSAL, BLOCK_M, BLOCK_N)
    for start in range(0, lo, BLOCK_N):
        m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _row_tile(
            q, K, MASK, k_base, m_base, start, rows, n, skn, scale2, window, sink_tokens,
            m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            0, CAUSAL, HAS_MASK, D, BLOCK_N, PRECISION, TRIM,
        )  # fmt: skip
    for start in range(lo, hi, BLOCK_N):
        m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _row_tile(
            q, K, MASK, k_base, m_base, start, rows, n, skn, scale2, window, sink_tokens,
            m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            1, CAUSAL, HAS_MASK, D, BLOCK_N, PRECISION, TRIM,
        )  # fmt: skip
    for start in range(hi, end, BLOCK_N):
        m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i = _row_tile(
            q, K, MASK, k_base, m_base, start, rows, n, skn, scale2, window, sink_tokens,
            m2, l_sum, a_s, a_pos, a_dist, a_w, a_sink, best_i,
            2, CAUSAL, HAS_MASK, D, BLOCK_N, PRECISION, TRIM,
        )  # fmt: skip
    if HAS_MASK:
        keep = row_in & (tl.load(MASK + m_base + rows, mask=row_in, other=0) != 0)
    else:
        keep = row_in
    keep = keep & (l_sum > 0)
    inv = 1.0 / tl.where(keep, l_sum, 1.0)
    lse2 = m2 + tl.log2(tl.where(keep, l_sum, 1.0))
    o = b * sob + hr * soh + rows
    tl.store(LSE2 + o, tl.where(keep, lse2, _BIG), mask=row_in)
    tl.store(ENT + o, tl.where(keep, (lse2 - a_s * scale2 * inv) * _LN2, 0.0), mask=row_in)
    tl.store(EPOS + o, tl.where(keep, a_pos * inv, 0.0), mask=row_in)
    tl.store(DIST + o, tl.where(keep, a_dist * inv, 0.0), mask=row_in)
    tl.store(WAAD + o, tl.where(keep, a_w * inv, 0.0), mask=row_in)
    tl.store(SINK + o, tl.where(keep, a_sink * inv, 0.0), mask=row_in)
    tl.store(ARG + o, tl.where(keep, best_i, -1), mask=row_in)


# -- pass 2: per-key statistics -----------------------------------------------------------------


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _col_tile(
    k, Q, LSE2, q_base, o_base, start, cols, n0, n, sqn, scale2, fai_lo, fai_hi, col, fai,
    MASK_CAUSAL: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """One query tile of rows start .. start + BLOCK_M - 1 against the program's key tile.

    The tile is computed transposed, keys x queries (s^T = k q^T), and added elementwise into a
    [BLOCK_N, BLOCK_M] accumulator: column sums become row sums, reduced once at the end within
    each warp (a reduction over queries in the q k^T layout crosses warps on every tile). The
    FAI window touches few tiles: those add row sums to a [BLOCK_N] vector."""
    rows = start + tl.arange(0, BLOCK_M)
    row_in = rows < n
    q = tl.load(
        Q + q_base + rows[:, None] * sqn + tl.arange(0, D)[None, :],
        mask=row_in[:, None],
        other=0.0,
    )
    lse2 = tl.load(LSE2 + o_base + rows, mask=row_in, other=_BIG)
    s2 = tl.dot(k, tl.trans(q), input_precision=PRECISION) * scale2  # [keys, queries]
    p = tl.exp2(s2 - lse2[None, :])
    if MASK_CAUSAL:
        p = tl.where(rows[None, :] >= cols[:, None], p, 0.0)
    col += p
    dt_min = start - (n0 + BLOCK_N - 1)  # smallest and largest t - j in this tile
    dt_max = start + BLOCK_M - 1 - n0
    if (dt_min >= fai_lo) & (dt_max <= fai_hi):
        fai += tl.sum(p, axis=1)
    elif (dt_max >= fai_lo) & (dt_min <= fai_hi):
        dt = rows[None, :] - cols[:, None]
        fai += tl.sum(tl.where((dt >= fai_lo) & (dt <= fai_hi), p, 0.0), axis=1)
    return col, fai


@triton.jit
@no_type_check  # the jaxtyping test hook must not wrap Triton kernels
def _col_stats_kernel(
    Q, K, MASK, LSE2, COL, FAI,
    sqb, sqh, sqn, skb, skh, skn, smb, sob, soh,
    n, n_bucket, scale2, rep, n_heads, fai_lo, fai_hi,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // n_heads).to(tl.int64)
    h = (bh % n_heads).to(tl.int64)
    n0 = pid_n * BLOCK_N
    cols = n0 + tl.arange(0, BLOCK_N)
    col_in = cols < n
    k = tl.load(
        K + b * skb + (h // rep) * skh + cols[:, None] * skn + tl.arange(0, D)[None, :],
        mask=col_in[:, None],
        other=0.0,
    )
    q_base = b * sqb + h * sqh
    o_base = b * sob + h * soh
    col = tl.zeros([BLOCK_N, BLOCK_M], tl.float32)  # per (key, query slot); summed at the end
    fai = tl.zeros([BLOCK_N], tl.float32)
    if CAUSAL:
        lo = (n0 // BLOCK_M) * BLOCK_M  # first query tile that sees a key of this tile
        mid = tl.minimum(tl.cdiv(n0 + BLOCK_N - 1, BLOCK_M) * BLOCK_M, n)  # then all t >= j
        for start in range(lo, mid, BLOCK_M):
            col, fai = _col_tile(
                k, Q, LSE2, q_base, o_base, start, cols, n0, n, sqn, scale2, fai_lo, fai_hi,
                col, fai, True, D, BLOCK_M, BLOCK_N, PRECISION,
            )  # fmt: skip
        for start in range(mid, n, BLOCK_M):
            col, fai = _col_tile(
                k, Q, LSE2, q_base, o_base, start, cols, n0, n, sqn, scale2, fai_lo, fai_hi,
                col, fai, False, D, BLOCK_M, BLOCK_N, PRECISION,
            )  # fmt: skip
    else:
        for start in range(0, n, BLOCK_M):
            col, fai = _col_tile(
                k, Q, LSE2, q_base, o_base, start, cols, n0, n, sqn, scale2, fai_lo, fai_hi,
                col, fai, False, D, BLOCK_M, BLOCK_N, PRECISION,
            )  # fmt: skip
    col_sum = tl.sum(col, axis=1)
    fai_sum = fai
    if HAS_MASK:
        key_ok = tl.load(MASK + b * smb + cols, mask=col_in, other=0) != 0
        col_sum = tl.where(key_ok, col_sum, 0.0)
        fai_sum = tl.where(key_ok, fai_sum, 0.0)
    o = o_base + cols
    tl.store(COL + o, col_sum, mask=col_in)
    tl.store(FAI + o, fai_sum, mask=col_in)


# -- launch configurations ----------------------------------------------------------------------

# (BLOCK_M, BLOCK_N, num_warps, num_stages); pruned per head dim and dtype by shared memory
_ROW_CONFIGS = [
    (64, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 3), (128, 32, 4, 3), (64, 32, 4, 4),
    (128, 128, 8, 2), (64, 64, 8, 3), (64, 128, 8, 3),
]  # fmt: skip
_COL_CONFIGS = [
    (32, 64, 4, 4), (32, 128, 4, 3), (64, 64, 4, 3), (64, 128, 8, 3), (128, 64, 8, 2),
    (64, 128, 4, 3), (128, 128, 8, 2),
]  # fmt: skip
_INTERPRETER_CONFIG = (16, 16, 4, 1)  # small tiles: the interpreter is slow; many tiles per test
_SMEM_BYTES = 160 * 1024  # fits sm_80 (164 KB) and sm_90 (228 KB) per block
_SMALLEST_CONFIG = (32, 32, 4, 1)  # d 256 in fp32
AUTOTUNE_MAX_BUCKET = 32768


def _fits(cfg: tuple[int, int, int, int], d: int, itemsize: int) -> bool:
    bm, bn, _, stages = cfg
    return (bm + bn) * d * itemsize * max(stages, 1) <= _SMEM_BYTES


def gpu_configs(kind: str, d: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """(BLOCK_M, BLOCK_N, warps, stages) the GPU autotuner tries for ``kind`` ("row" or "col")
    at padded head dim ``d`` and input element size ``itemsize``."""
    table = _ROW_CONFIGS if kind == "row" else _COL_CONFIGS
    return [c for c in table if _fits(c, d, itemsize)] or [_SMALLEST_CONFIG]


def autotune(kind: str, extra_key: tuple[str, ...] = (), reset_to_zero: list[str] | None = None):
    """triton.autotune over the ``kind`` ("row": pass 1 and the fused pass, "col": pass 2)
    configs, pruned per launch to those that fit the head dim and dtype; keyed by context
    bucket, head dim and flags (+ ``extra_key``)."""
    if INTERPRET:
        table = [_INTERPRETER_CONFIG]
    else:  # every config any head dim / dtype may keep; ``prune`` picks per launch
        table = list(dict.fromkeys(
            c for d in HEAD_DIMS for size in (2, 4) for c in gpu_configs(kind, d, size)
        ))  # fmt: skip

    def prune(tried, named_args, **_):
        q = named_args["Q"]
        keep = set(gpu_configs(kind, q.shape[-1], q.element_size()))
        key = lambda c: (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages)  # noqa: E731
        return [c for c in tried if key(c) in keep] or tried[:1]

    return triton.autotune(
        configs=configs(kind, table),
        key=["n_bucket", "D", "CAUSAL", "HAS_MASK", *extra_key],
        prune_configs_by=None if INTERPRET else {"early_config_prune": prune},
        reset_to_zero=reset_to_zero,
    )


def configs(kind: str, table: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    """triton.Configs of ``table``; the row-statistic kernels (pass 1 and the fused pass) also
    try both argmax strategies (``TRIM``: search the index only on tiles where some row's max
    grows, a scalar branch and a cross-warp reduction per tile, or search it on every tile in
    the max's own reduction): which is faster depends on the GPU and the tile shape, so the
    autotuner measures it. In the interpreter only the trimmed one (the branchier code)."""
    trims = (None,) if kind == "col" else (True,) if INTERPRET else (False, True)
    return [
        triton.Config(
            {"BLOCK_M": bm, "BLOCK_N": bn, **({} if trim is None else {"TRIM": trim})},
            num_warps=w,
            num_stages=s,
        )  # fmt: skip
        for bm, bn, w, s in table
        for trim in trims
    ]


def group_size(rep: int, block_m: int, max_rows: int = 128) -> int:
    """Query heads per pass-1 program: the largest power of two dividing ``rep`` (query heads
    per kv head), capped so a tile holds at most ``max_rows`` rows."""
    return max(1, min(rep & -rep, max_rows // block_m))


#: the config each autotuned kernel chose per launch key (see ``launch``)
_CHOSEN: dict[tuple, triton.Config] = {}


def launch(tuned, key: tuple, grid, *args, **kwargs) -> None:
    """Launch the autotuned kernel ``tuned``. The first launch of a ``key`` (the autotuner's
    own key: context bucket, head dim, flags, dtype) goes through the autotuner; later ones go
    straight to the kernel with the config it chose, skipping the autotuner's per-call
    bookkeeping (argument dicts, key tuples, pruning)."""
    config = _CHOSEN.get((id(tuned), *key))
    if config is None:
        tuned[grid](*args, **kwargs)
        if tuned.best_config is not None:
            _CHOSEN[(id(tuned), *key)] = tuned.best_config
        return
    tuned.fn[grid](*args, **kwargs, **config.all_kwargs())


_row_stats = autotune("row")(
    triton.heuristics({"GROUP": lambda a: group_size(a["rep"], a["BLOCK_M"])})(_row_stats_kernel)
)
_col_stats = autotune("col")(_col_stats_kernel)

if INTERPRET:
    from triton.runtime.interpreter import InterpretedFunction

    # Triton decides per @jit function whether it is interpreted when the function is defined;
    # its own library functions (tl.sum, tl.max, ...) were defined when triton was imported.
    if not isinstance(tl.standard.sum, InterpretedFunction):
        raise ImportError(
            "Triton was imported before interp without TRITON_INTERPRET=1 on a machine without a "
            "CUDA GPU, so its kernels cannot run in the interpreter. Import interp (or "
            "interp.stats) before triton, or set TRITON_INTERPRET=1 in the environment."
        )


# -- launcher -----------------------------------------------------------------------------------


def padded_head_dim(d: int) -> int:
    """The kernel head dim for ``d``: the next power of two >= 16 (zero-padding keeps q.k)."""
    for size in HEAD_DIMS:
        if d <= size:
            return size
    raise InputError(
        f"the triton backend supports head dims up to {HEAD_DIMS[-1]}, got {d}; use backend='torch'"
    )


def triton_attention_stats(
    q, k, causal, key_mask, scale, window, sink_tokens, fai_window, padded: bool | None = None
):
    """Both passes; returns the dict of ``interp.stats.streaming.AttentionStats`` fields.
    ``padded``: whether ``key_mask`` has a False entry (None: find out, a host-device sync)."""
    b, hq, n, d = q.shape
    if scale <= 0:  # the kernels need scale > 0 (they take row maxima of the unscaled scores)
        q, scale = (-q, -scale) if scale < 0 else (torch.zeros_like(q), 1.0)
    if not INTERPRET and not q.is_cuda:
        raise InputError(
            "the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 on a machine without "
            "a GPU); use backend='torch' for CPU tensors"
        )
    d_pad = padded_head_dim(d)
    if d_pad != d:  # zero-padding the head dim leaves every dot product unchanged
        q = torch.nn.functional.pad(q, (0, d_pad - d))
        k = torch.nn.functional.pad(k, (0, d_pad - d))
    if INTERPRET or q.dtype == torch.float32:
        # the interpreter's bf16/fp16 dot is wrong: compute in fp32 there
        q, k, precision = q.float().contiguous(), k.float().contiguous(), "ieee"
    else:
        q, k, precision = q.contiguous(), k.contiguous(), None  # bf16/fp16 MMA, fp32 accum
    has_mask = not bool(key_mask.all()) if padded is None else padded
    mask = key_mask.to(torch.int8).contiguous()
    rep = hq // k.shape[1]
    f32 = dict(device=q.device, dtype=torch.float32)
    names = ("entropy", "expected_position", "mean_distance", "waad", "sink_mass", "lse2",
             "col_sum", "fai_sum")  # fmt: skip
    out = dict(zip(names, torch.empty(len(names), b, hq, n, **f32), strict=True))  # one buffer
    lse2 = out.pop("lse2")
    out["argmax"] = torch.empty(b, hq, n, device=q.device, dtype=torch.int32)
    strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2))
    so = (mask.stride(0), lse2.stride(0), lse2.stride(1))
    # autotune once per power-of-two context bucket up to 32k (longer contexts keep its choice)
    n_bucket = min(1 << max(n - 1, 0).bit_length(), AUTOTUNE_MAX_BUCKET)
    scale2 = scale * LOG2E
    common = dict(CAUSAL=causal, HAS_MASK=has_mask, D=d_pad, PRECISION=precision)
    key = (n_bucket, d_pad, causal, has_mask, q.dtype)
    launch(
        _row_stats, key, lambda meta: (triton.cdiv(n, meta["BLOCK_M"]), b * hq // meta["GROUP"]),
        q, k, mask, lse2, out["entropy"], out["expected_position"], out["mean_distance"],
        out["waad"], out["sink_mass"], out["argmax"], *strides, *so,
        n, n_bucket, scale2, rep, hq, int(window), sink_tokens, **common,
    )  # fmt: skip
    launch(
        _col_stats, key, lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), b * hq),
        q, k, mask, lse2, out["col_sum"], out["fai_sum"], *strides, *so,
        n, n_bucket, scale2, rep, hq, int(fai_window[0]), int(fai_window[1]), **common,
    )  # fmt: skip
    out["lse"] = torch.where(key_mask[:, None, :], lse2 * LN2, 0.0) if has_mask else lse2 * LN2
    out["argmax"] = out["argmax"].long()
    return out


# -- every specialisation, for the compile test ------------------------------------------------

# the GROUP values ``group_size`` can give at each BLOCK_M (rep = query heads per kv head)
_GROUPS_OF = {
    bm: sorted({group_size(rep, bm) for rep in (1, 2, 4, 8, 16, 32)})
    for bm in {c[0] for c in _ROW_CONFIGS + [_SMALLEST_CONFIG]}
}
_TORCH_TO_TRITON = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


# integer arguments the launcher's values make multiples of 16 in a typical launch (strides,
# lengths); Triton then specialises on that (vector loads, asynchronous copies)
_ALIGNABLE = {"sqb", "sqh", "sqn", "skb", "skh", "skn", "smb", "sob", "soh", "n", "n_bucket"}


def compile_variants() -> Iterator[
    tuple[str, object, dict[str, str], dict[str, object], dict[str, int], dict]
]:
    """(label, jit function, signature, constexprs, options, attrs) of each kernel specialisation
    the launcher can produce on a GPU: every dtype x head dim x (causal, key mask) x alignment x
    tuned config. Alignment ``a16``: every pointer, stride and length a multiple of 16 (what a
    launch on fresh tensors with n % 16 == 0 compiles); ``a1``: none (any other launch)."""
    kernels = (
        ("row", _row_stats_kernel, ("LSE2", "ENT", "EPOS", "DIST", "WAAD", "SINK", "ARG")),
        ("col", _col_stats_kernel, ("LSE2", "COL", "FAI")),
    )
    for (kind, fn, outputs), dtype, d, causal, has_mask, align in itertools.product(
        kernels, _TORCH_TO_TRITON, HEAD_DIMS, (True, False), (False, True), ("a16", "a1")
    ):
        t = _TORCH_TO_TRITON[dtype]
        sig = {"Q": f"*{t}", "K": f"*{t}", "MASK": "*i8"}
        sig.update({name: "*i32" if name == "ARG" else "*fp32" for name in outputs})
        sig.update(
            {name: "fp32" if name == "scale2" else "i32" for name in fn.arg_names[len(sig) :]}
        )
        attrs = {
            (i,): [["tt.divisibility", 16]]
            for i, name in enumerate(fn.arg_names)
            if align == "a16" and name in sig and (sig[name][0] == "*" or name in _ALIGNABLE)
        }
        for (bm, bn, warps, stages), group in (
            (cfg, g)
            for cfg in gpu_configs(kind, d, dtype.itemsize)
            for g in (_GROUPS_OF[cfg[0]] if kind == "row" else (None,))
        ):
            const: dict[str, object] = dict(
                CAUSAL=causal, HAS_MASK=has_mask, D=d, BLOCK_M=bm, BLOCK_N=bn,
                PRECISION="ieee" if dtype == torch.float32 else None,
            )  # fmt: skip
            if group is not None:
                const["GROUP"] = group
                const["TRIM"] = causal != has_mask  # both argmax strategies, over the flags
            label = (
                f"{kind}-{t}-d{d}-{'causal' if causal else 'bidir'}-"
                f"{'mask' if has_mask else 'nomask'}-{align}-"
                f"{bm}x{bn}w{warps}s{stages}g{group or 1}"
            )
            options = {"num_warps": warps, "num_stages": stages}
            sig_all = {**sig, **dict.fromkeys(const, "constexpr")}
            yield label, fn, sig_all, const, options, attrs


__all__ = ["HEAD_DIMS", "compile_variants", "gpu_configs", "padded_head_dim"]
