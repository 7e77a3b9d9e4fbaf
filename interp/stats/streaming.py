"""Attention statistics from post-rotary q and k without building the n x n pattern
(docs/methods.md section 7).

``attention_stats(q, k)`` returns, per query head, everything the head detectors need:

- per query t: ``lse`` (row log-sum-exp of the scaled scores), ``entropy`` (nats),
  ``expected_position`` (sum_j A[t,j] j), ``mean_distance`` (sum_j A[t,j] |t - j|; for causal
  attention the head span of docs/methods.md section 3 is its mean over t), ``waad``
  (sum_j A[t,j] min(|t - j|, W), W = 10), ``sink_mass`` (attention on keys j < ``sink_tokens``)
  and ``argmax`` (top-1 key; first index on ties, like ``torch.argmax``);
- per key j: ``col_sum`` (sum_t A[t,j], attention received), ``fai_sum`` (sum of A[t,j] over
  queries with t - j in [lo, hi], default [10, 100]); with the query counts ``col_count`` and
  ``fai_count`` these give ``sink_score`` s_j = col_sum / (queries that see j) and ``fai``.

Backends (one function, ``backend="auto"`` picks): ``dense`` (plain softmax over the full
pattern; the test oracle, small n only), ``torch`` (exact, chunked over queries, O(chunk x n)
memory, CPU or GPU) and ``triton`` (two FlashAttention-style passes on a GPU; see
``interp.kernels.attention_stats``). Padding: ``key_mask[b, j]`` (True = real token) masks keys,
and padded query rows get 0 everywhere (``argmax`` -1) and add nothing to the column sums.
"""

from __future__ import annotations

import contextvars
import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import no_type_check

import torch
from torch import Tensor

from interp.defaults import FAI_WINDOW, WAAD_WINDOW
from interp.errors import InputError
from interp.shapes import Bool, Float, Int
from interp.stats import dense

BACKENDS = ("auto", "dense", "torch", "triton")


@dataclass
class AttentionStats:
    """Per-query ([batch, head, n]) and per-key ([batch, head, n]) statistics of one layer."""

    lse: Float[Tensor, "batch head n"]
    entropy: Float[Tensor, "batch head n"]
    expected_position: Float[Tensor, "batch head n"]
    mean_distance: Float[Tensor, "batch head n"]
    waad: Float[Tensor, "batch head n"]
    sink_mass: Float[Tensor, "batch head n"]
    argmax: Int[Tensor, "batch head n"]
    col_sum: Float[Tensor, "batch head n"]
    fai_sum: Float[Tensor, "batch head n"]
    # (without a key mask both counts are views of a cached closed form: do not edit in place)
    col_count: Float[Tensor, "batch n"]  # real queries that can see key j
    fai_count: Float[Tensor, "batch n"]  # real queries t with t - j in the FAI window

    @property
    def sink_score(self) -> Float[Tensor, "batch head n"]:
        """s_j = sum_t A[t, j] / (number of queries that can see j) (= N - j when causal)."""
        return self.col_sum / self.col_count[:, None].clamp_min(1)

    @property
    def fai(self) -> Float[Tensor, "batch head n"]:
        """FAI_j = mean of A[t, j] over the window; NaN where the window holds no query."""
        c = self.fai_count[:, None].expand_as(self.fai_sum)
        return torch.where(c > 0, self.fai_sum / c.clamp_min(1), torch.nan)

    def to(self, device) -> AttentionStats:
        return AttentionStats(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _check(q: Tensor, k: Tensor, key_mask: Tensor | None) -> Tensor:
    if q.dim() != 4 or k.dim() != 4:
        raise InputError(
            f"q and k must be [batch, heads, n, d]; got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    b, hq, n, d = q.shape
    if k.shape[0] != b or k.shape[2] != n or k.shape[3] != d:
        raise InputError(
            f"k {tuple(k.shape)} does not match q {tuple(q.shape)}: batch, n and d must agree"
        )
    if hq % k.shape[1]:
        raise InputError(f"query heads ({hq}) must be a multiple of key/value heads ({k.shape[1]})")
    if key_mask is None:
        return torch.ones(b, n, dtype=torch.bool, device=q.device)
    if tuple(key_mask.shape) != (b, n):
        raise InputError(f"key_mask must be [batch, n] = {(b, n)}, got {tuple(key_mask.shape)}")
    return key_mask.to(device=q.device, dtype=torch.bool)


def query_counts(
    key_mask: Bool[Tensor, "batch n"],
    causal: bool,
    fai_window: tuple[int, int],
    sliding_window: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(queries that see key j, real queries with t - j in the FAI window that see j), both
    [batch, n]; ``sliding_window`` W: query t sees key j only when t - j < W."""
    real = key_mask.float()
    n = real.shape[1]
    c = torch.cat([torch.zeros_like(real[:, :1]), real.cumsum(1)], 1)  # c[i] = real t < i
    j = torch.arange(n, device=real.device)
    if causal and sliding_window is not None:
        col = c[:, (j + sliding_window).clamp(max=n)] - c[:, j]  # real t in [j, j + W)
    elif causal:
        col = real.flip(1).cumsum(1).flip(1)  # real t >= j
    else:
        col = real.sum(1, keepdim=True).expand(-1, n)
    col = col * real  # a padded key is seen by no one
    lo, hi = fai_window
    if sliding_window is not None:
        hi = min(hi, sliding_window - 1)
    a, z = (j + lo).clamp(max=n), (j + hi + 1).clamp(max=n)
    fai = (c[:, z] - c[:, a]).clamp(min=0) * real
    return col, fai


@functools.lru_cache(maxsize=64)
def _unpadded_counts(
    n: int, causal: bool, fai_window: tuple[int, int], sliding: int | None, device: str
) -> tuple[Tensor, Tensor]:
    """``query_counts`` without padding in closed form ([1, n] each), cached per shape: a
    short GPU call then launches no cumsum / gather kernels for them. Query t sees key j when
    j <= t (causal) and t - j < W (window); FAI counts t - j in [lo, min(hi, W - 1)]."""
    j = torch.arange(n, device=device, dtype=torch.float32)
    if causal and sliding is not None:
        col = torch.clamp(n - j, max=sliding)
    elif causal:
        col = n - j
    else:
        col = torch.full_like(j, float(n))
    lo, hi = fai_window
    if sliding is not None:
        hi = min(hi, sliding - 1)
    fai = (torch.clamp(n - 1 - j, max=hi) - lo + 1).clamp(min=0)
    return col[None], fai[None]


def _dense(q, k, causal, key_mask, scale, window, sink_tokens, fai_window, sliding):
    """The plain reference: full softmax pattern, every statistic read off it."""
    b, hq, n, _ = q.shape
    kx = k.repeat_interleave(hq // k.shape[1], dim=1)
    s = (q.float() @ kx.float().transpose(-1, -2)) * scale
    t = torch.arange(n, device=q.device)[:, None]
    j = torch.arange(n, device=q.device)[None, :]
    near = (t - j) < sliding if sliding is not None else torch.ones_like(t == j)
    visible = key_mask[:, None, None, :] & ((j <= t) if causal else torch.ones_like(t == j)) & near
    row = key_mask[:, None, :, None]
    s = s.masked_fill(~visible, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num() * row
    rowf = key_mask[:, None, :].float()
    return dict(  # every statistic read off the pattern by interp.stats.dense
        lse=torch.logsumexp(s, -1).nan_to_num(neginf=0.0) * rowf,
        entropy=torch.special.entr(p).sum(-1),
        expected_position=(p * j).sum(-1),
        mean_distance=dense.windowed_distance(p),
        waad=dense.windowed_distance(p, window),
        sink_mass=p[..., :sink_tokens].sum(-1),
        argmax=torch.where(key_mask[:, None, :], s.argmax(-1), -1),
        col_sum=p.sum(-2),
        fai_sum=dense.fai_window_sums(p, *fai_window)[0],
    )


_NEG = -1e30  # a masked score: 2 ** (_NEG - max) is exactly 0 and 0 * _NEG is 0 (no NaN)
_LOG2E, _LN2 = 1.0 / math.log(2.0), math.log(2.0)


_WORKSPACE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "interp_stats_workspace", default=None
)


@contextmanager
def reuse_workspace() -> Iterator[None]:
    """Keep the torch backend's two score buffers between calls (a whole-model pass calls
    ``attention_stats`` once per layer): large fresh allocations are returned to the OS and
    page-faulted in again on every call. Freed on exit."""
    token = _WORKSPACE.set({})
    try:
        yield
    finally:
        _WORKSPACE.reset(token)


def _workspace(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Two flat fp32 buffers of at least ``size`` elements (kept inside ``reuse_workspace``)."""
    cache = _WORKSPACE.get()
    if cache is None:
        return torch.empty(size, device=device), torch.empty(size, device=device)
    got = cache.get(device)
    if got is None or got[0].numel() < size:
        got = cache[device] = (torch.empty(size, device=device), torch.empty(size, device=device))
    return got


def _band(e: Tensor, c0: int, offsets: range) -> tuple[Tensor, Tensor]:
    """e[..., r, t - o] for query t = c0 + r and each offset o (key t - o), gathered into
    [..., chunk, len(offsets)], and the [chunk, len(offsets)] keys (clamped; -1 < key < m
    marks the ones that exist)."""
    c, m = e.shape[-2], e.shape[-1]
    t = torch.arange(c0, c0 + c, device=e.device)[:, None]
    key = t - torch.tensor(list(offsets), device=e.device)[None, :]
    ok = (key >= 0) & (key < m)
    idx = key.clamp(0, m - 1)
    got = e.gather(-1, idx.expand(*e.shape[:-2], c, len(offsets)))
    return got * ok, idx


def _torch(q, k, causal, key_mask, scale, window, sink_tokens, fai_window, sliding, chunk):
    """Exact, chunked over queries: never more than [batch, head, chunk, n] scores at once.

    Few passes over each [batch, head, chunk, keys] block (docs/methods.md section 7): one
    matmul writes the scores (in bits: scale * log2(e) is folded into q), the mask is set in
    place (only a causal chunk's last keys when nothing is padded), one reduction gives the
    row max and argmax, and e = 2^(s - max) is one pass (``exp2``: torch's CPU ``exp`` leaves
    its vector path below -87 and runs ~40x slower on the far-below-max scores of a peaked
    head or a mask). Every other statistic is a product read of e: row sums, expected
    position, distance to the chunk end and sink mass from one [keys, 4] product; column
    sums from one [1, chunk] product; the entropy from one row dot
    (entropy = ln 2 (log2 Z - sum e (s - max) / Z)); WAAD and FAI from a gather of a narrow
    band of keys (WAAD: the W - 1 keys nearest each query, min(d, W) = W - max(W - d, 0);
    FAI: the keys t - hi .. t - lo, scattered into their columns). The two score buffers
    are kept between calls inside ``reuse_workspace``.
    """
    b, hq, n, _ = q.shape
    rep = hq // k.shape[1]
    kt = k.float().transpose(-1, -2)
    lo, hi = fai_window
    dev = q.device
    out = {
        name: torch.zeros(b, hq, n, device=dev)
        for name in ("lse", "entropy", "expected_position", "mean_distance", "waad", "sink_mass")
    }
    out["argmax"] = torch.full((b, hq, n), -1, dtype=torch.long, device=dev)
    col = torch.zeros(b, hq, n, device=dev)
    fai = torch.zeros(b, hq, n, device=dev)
    size = b * hq * min(chunk, n) * n
    s_buf, e_buf = _workspace(size, dev)  # reused: fresh large blocks cost page faults
    waad_offsets = range(0 if causal else 1 - window, window)
    full = sliding is None and bool(key_mask.all())
    fai_offsets = range(lo, hi + 1)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        c, m = c1 - c0, (c1 if causal else n)  # keys a causal chunk can see
        qs = (q[:, :, c0:c1].float() * (scale * _LOG2E)).reshape(b, hq // rep, rep * c, -1)
        s = torch.matmul(qs, kt[..., :m], out=s_buf[: b * hq * c * m].view(b, -1, rep * c, m))
        s = s.view(b, hq, c, m)
        t = torch.arange(c0, c1, device=dev)[:, None]
        j = torch.arange(m, device=dev)[None, :]
        if full:  # no padding, no window: only a causal chunk's last c keys are masked
            if causal:
                s[..., c0:].masked_fill_(j[:, c0:] > t, _NEG)
        else:
            vis = key_mask[:, None, None, :m] & ((j <= t) if causal else (j >= 0))
            if sliding is not None:
                vis = vis & ((t - j) < sliding)
            s.masked_fill_(~vis, _NEG)
        real = key_mask[:, None, c0:c1].float()  # [b, 1, c]
        mx, arg = s.max(-1)
        s.sub_(mx[..., None])  # s - max (<= 0), in bits
        e = torch.exp2(s, out=e_buf[: b * hq * c * m].view(b, hq, c, m))
        cols = [torch.ones(m, device=dev), j[0].float(), (c1 - 1 - j[0]).float(),
                (j[0] < sink_tokens).float()]  # fmt: skip
        rows = e @ torch.stack(cols, 1)  # [b, hq, c, 4]
        z = rows[..., 0]
        inv = real / z  # 1 / Z on real rows, 0 on padded ones
        sl = slice(c0, c1)
        out["lse"][:, :, sl] = (mx + torch.log2(z)) * (_LN2 * real)
        dot = torch.einsum("bhij,bhij->bhi", e, s)  # sum_j e (s - max)
        out["entropy"][:, :, sl] = (torch.log2(z) - dot / z) * (_LN2 * real)
        out["expected_position"][:, :, sl] = rows[..., 1] * inv
        if causal:  # t - j = (c1 - 1 - j) - (c1 - 1 - t): small numbers, no cancellation
            dist = rows[..., 2] * inv - (c1 - 1 - t[:, 0]) * real
        else:
            dist = (e * (t - j).abs().float()).sum(-1) * inv
        out["mean_distance"][:, :, sl] = dist
        if len(waad_offsets) < m:
            near, _ = _band(e, c0, waad_offsets)
            w = torch.tensor([window - abs(o) for o in waad_offsets], device=dev).float()
            out["waad"][:, :, sl] = (window - (near @ w) / z) * real
        else:
            d = (t - j).abs().float().clamp(max=window)
            out["waad"][:, :, sl] = (e * d).sum(-1) * inv
        out["sink_mass"][:, :, sl] = rows[..., 3] * inv
        out["argmax"][:, :, sl] = torch.where(real > 0, arg, -1)
        col[..., :m] += (inv.unsqueeze(-2) @ e).squeeze(-2)
        if len(fai_offsets) < m:
            band, idx = _band(e, c0, fai_offsets)
            src = (band * inv[..., None]).flatten(-2)
            fai[..., :m].scatter_add_(-1, idx.flatten().expand_as(src), src)
        else:
            in_fai = (((t - j) >= lo) & ((t - j) <= hi)).float()
            fai[..., :m] += (inv.unsqueeze(-2) @ (e * in_fai)).squeeze(-2)
    out["col_sum"], out["fai_sum"] = col, fai
    return out


def pair_weights(
    q: Float[Tensor, "batch q_heads n d"],
    k: Float[Tensor, "batch kv_heads n d"],
    lse: Float[Tensor, "batch q_heads n"],
    t_idx: Int[Tensor, " pairs"],
    j_idx: Int[Tensor, " pairs"],
    *,
    scale: float | None = None,
    chunk: int = 1 << 15,
    sliding_window: int | None = None,
) -> Float[Tensor, "batch q_heads pairs"]:
    """Attention weights A[b, h, t, j] = exp(scale * q_t . k_j - lse_t) at given (t, j) pairs.

    ``lse`` is ``attention_stats(...).lse`` of the same q, k: with it any sparse set of pattern
    entries (previous token, duplicate tokens, ...) is exact in O(pairs x d), without the n x n
    pattern. Pairs must be entries the pattern has (j visible from t); padded rows have lse 0
    and are the caller's to skip. With ``sliding_window`` W a pair with t - j >= W (a key the
    query cannot see) weighs 0.
    """
    rep = q.shape[1] // k.shape[1]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    qf, kf = q.float(), k.float().repeat_interleave(rep, dim=1)
    t_idx, j_idx = t_idx.to(q.device), j_idx.to(q.device)
    out = torch.empty(q.shape[0], q.shape[1], t_idx.numel(), device=q.device)
    for c0 in range(0, t_idx.numel(), chunk):
        t, j = t_idx[c0 : c0 + chunk], j_idx[c0 : c0 + chunk]
        dots = (qf[:, :, t] * kf[:, :, j]).sum(-1) * scale
        out[:, :, c0 : c0 + chunk] = torch.exp(dots - lse[:, :, t].float())
    if sliding_window is not None:
        out[:, :, (t_idx - j_idx) >= sliding_window] = 0.0
    return out


def default_chunk(b: int, h: int, n: int, budget_bytes: int = 256 * 2**20) -> int:
    """Query chunk so that ~6 fp32 [b, h, chunk, n] temporaries fit in ``budget_bytes``."""
    return max(16, min(n, budget_bytes // (6 * 4 * b * h * max(n, 1))))


@no_type_check  # validates its inputs itself (clear InputError); shapes are documentation
def attention_stats(
    q: Float[Tensor, "batch q_heads n d"],
    k: Float[Tensor, "batch kv_heads n d"],
    *,
    causal: bool = True,
    key_mask: Bool[Tensor, "batch n"] | None = None,
    scale: float | None = None,
    window: int = WAAD_WINDOW,
    sink_tokens: int = 1,
    fai_window: tuple[int, int] = FAI_WINDOW,
    backend: str = "auto",
    chunk: int | None = None,
    sliding_window: int | None = None,
    lse: Float[Tensor, "batch q_heads n"] | None = None,
    deterministic: bool = False,
    check_lse: bool = True,
) -> AttentionStats:
    """Statistics of softmax(scale * q k^T) per query head, without the n x n matrix.

    ``q``: post-rotary queries, ``k``: post-rotary keys (grouped-query attention: query head h
    reads key head h // (q_heads / kv_heads)). ``scale`` defaults to 1/sqrt(d).
    ``backend``: ``auto`` = triton on a CUDA tensor when Triton is installed, else torch.
    ``sliding_window`` W (Mistral, Gemma-2's local layers; causal only): query t sees key j
    only when t - j < W, as the model's own mask; the triton kernels do not take it (``auto``
    uses torch then).

    ``lse``: each row's log-sum-exp of ``scale * q k^T`` as the model's own attention computed
    it (torch's flash / efficient SDPA ops return it; ``interp.stats.capture`` passes it). The
    triton backend then computes every statistic in ONE pass
    (``interp.kernels.fused_stats``) with the model's weights exp(s - lse); column sums are
    added with atomics unless ``deterministic`` (then a second, atomic-free column pass).
    ``check_lse`` refuses an ``lse`` whose weights do not sum to 1 (one host-device sync).
    The torch and dense backends compute the LSE themselves and ignore it.
    """
    mask = _check(q, k, key_mask)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if window < 1 or sink_tokens < 0 or not 0 <= fai_window[0] <= fai_window[1]:
        raise InputError(
            "need window >= 1, sink_tokens >= 0 and 0 <= fai_window[0] <= fai_window[1]; got "
            f"window={window}, sink_tokens={sink_tokens}, fai_window={fai_window}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    sliding = None if sliding_window is None or sliding_window >= q.shape[2] else sliding_window
    if sliding is not None and (sliding < 1 or not causal):
        raise InputError(
            f"sliding_window must be >= 1 and the attention causal; got {sliding_window}, "
            f"causal={causal}"
        )
    if backend == "auto":
        from interp.kernels import triton_available

        use = q.is_cuda and triton_available() and sliding is None
        backend = "triton" if use else "torch"
    if backend == "triton" and sliding is not None:
        raise InputError("the triton kernels take no sliding window; use backend='torch'")
    args = (q, k, causal, mask, scale, window, sink_tokens, fai_window)
    if backend == "dense":
        out = _dense(*args, sliding)
    elif backend == "torch":
        b, h, n, _ = q.shape
        out = _torch(*args, sliding, chunk or default_chunk(b, h, n))
    else:
        try:
            from interp.kernels.attention_stats import triton_attention_stats
            from interp.kernels.fused_stats import fused_attention_stats
        except ImportError as e:  # Triton missing, or imported too early on a CPU machine
            raise InputError(f"the triton backend is unavailable: {e}") from e
        # no mask given: no padding, and no host-device sync to find that out
        padded = False if key_mask is None else None
        if lse is None:
            out = triton_attention_stats(*args, padded=padded)
        else:
            out = fused_attention_stats(
                q, k, lse, *args[2:], padded=padded, deterministic=deterministic,
                check_lse=check_lse,
            )  # fmt: skip
    if key_mask is None:  # no padding: closed form, cached
        col, fai = _unpadded_counts(q.shape[2], causal, tuple(fai_window), sliding, str(q.device))
        col_count, fai_count = col.expand(q.shape[0], -1), fai.expand(q.shape[0], -1)
    else:
        col_count, fai_count = query_counts(mask, causal, fai_window, sliding)
    return AttentionStats(**out, col_count=col_count, fai_count=fai_count)
