"""Reference attention statistics from full post-softmax patterns (the test oracle).

The one home of every statistic read off a full pattern: the streaming backends, the anchor
detector and the calibration use these functions (or are tested against them).

Notation (``docs/methods.md``): A[l,h] is the attention of layer l, head h; rows are queries t,
columns keys s; causal models have s <= t. ``lengths[b]`` is prompt b's real length N_b; entries
at padded positions must already be 0 (``interp.run_heads`` guarantees that).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.shapes import Float

_EPS = 1e-30


def _positions(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    t = torch.arange(n, device=device)
    return t[:, None], t[None, :]


def _abs_distance(n: int, device: torch.device) -> Tensor:
    tq, sk = _positions(n, device)
    return (tq - sk).abs().float()  # [t, s]


def windowed_distance(
    pattern: Float[Tensor, "... query key"], window: int | float = float("inf")
) -> Float[Tensor, "... query"]:
    """sum_s A[t,s] min(|t - s|, window): WAAD_t for ``window`` = W, the mean attention
    distance for ``window`` = inf (for causal attention |t - s| = t - s)."""
    d = _abs_distance(pattern.shape[-1], pattern.device).clamp(max=window)
    return (pattern.float() * d).sum(-1)


def attention_span(pattern: Float[Tensor, "... query key"]) -> Float[Tensor, ...]:
    """Head span d = mean_t sum_s A[t,s] |t - s| (Preplan-and-Anchor; causal: t - s)."""
    return windowed_distance(pattern).mean(-1)


def span_without_sinks(
    pattern: Float[Tensor, "... query key"], threshold: float = 0.1
) -> Float[Tensor, ...]:
    """The span with each head's sink keys left out: key 0 and the keys j >= 1 whose sink
    score s_j = sum_t A[t,j] / (N - j) exceeds ``threshold`` (ACT's 0.1). Each row's attention
    to the other keys is renormalised, d_t = sum_s A[t,s] (t - s) / sum_s A[t,s] over non-sink
    s, and the span is the mean over the rows that give those keys any attention (causal
    windows of equal length, as ``attention_span``)."""
    a = pattern.float()
    n = a.shape[-1]
    seen = torch.arange(n, 0, -1, device=a.device, dtype=a.dtype)  # N - j queries see key j
    sink = a.sum(-2) / seen > threshold  # [..., key]
    sink[..., 0] = True
    rest = a * (~sink)[..., None, :]
    mass = rest.sum(-1)  # [..., query]
    dist = (rest * _abs_distance(n, a.device)).sum(-1) / mass.clamp_min(1e-12)
    used = mass > 1e-6
    return (dist * used).sum(-1) / used.sum(-1).clamp_min(1)


def fai_window_sums(
    pattern: Float[Tensor, "... query key"], lo: int, hi: int
) -> tuple[Float[Tensor, "... key"], Tensor]:
    """Per key s: sum of A[t,s] over queries with lo <= t - s <= hi, and how many such t."""
    tq, sk = _positions(pattern.shape[-1], pattern.device)
    window = (((tq - sk) >= lo) & ((tq - sk) <= hi)).float()  # [t, s]
    return (pattern.float() * window).sum(-2), window.sum(0)


def fai(pattern: Float[Tensor, "... query key"], lo: int, hi: int) -> Float[Tensor, "... key"]:
    """FAI_s = mean of A[t,s] over t in [s + lo, min(N - 1, s + hi)]; NaN where empty."""
    total, count = fai_window_sums(pattern, lo, hi)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def per_query_stats(
    pattern: Float[Tensor, "batch head query key"],
) -> dict[str, Float[Tensor, "batch head query"]]:
    """Statistics of each attention row.

    - ``entropy``: -sum_s A[t,s] log A[t,s] (nats).
    - ``first_token_mass``: A[t,0].
    - ``prev_token_mass``: A[t,t-1] (0 for t = 0).
    - ``mean_distance``: sum_s A[t,s] |t - s| (for causal models t - s, the head span of
      Preplan-and-Anchor, arXiv 2510.13554).
    """
    n = pattern.shape[-1]
    p = pattern.float()
    entropy = -(p * torch.log(p.clamp_min(_EPS))).sum(-1)
    prev = torch.zeros_like(p[..., 0])
    if n > 1:
        prev[..., 1:] = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1)
    distance = windowed_distance(p)
    return {
        "entropy": entropy,
        "first_token_mass": p[..., 0],
        "prev_token_mass": prev,
        "mean_distance": distance,
    }


def sink_scores(
    pattern: Float[Tensor, "batch head query key"], lengths: list[int], *, causal: bool = True
) -> Float[Tensor, "batch head key"]:
    """Sink score of every key: s_j = sum_i A[i,j] / (N - j) (causal) or / N (bidirectional).

    The mean attention key j receives from the queries that can see it (ACT, Yu et al. 2024,
    arXiv 2406.15765; alpha_j of Gu et al. 2025). Keys past a prompt's length score 0.
    """
    col = pattern.float().sum(-2)  # [b, h, k]
    n_total = pattern.shape[-1]
    out = torch.zeros_like(col)
    j = torch.arange(n_total, device=col.device, dtype=col.dtype)
    for b, n in enumerate(lengths):
        seen = (n - j[:n]) if causal else torch.full_like(j[:n], float(n))
        out[b, :, :n] = col[b, :, :n] / seen
    return out


def head_summary(
    pattern: Float[Tensor, "batch head query key"], lengths: list[int], *, causal: bool = True
) -> dict[str, Float[Tensor, " head"]]:
    """Per-head sums over real query positions (and their count) for streaming averages.

    Queries t >= 1 are used (for causal models the row of t = 0 is trivially [1, 0, ...]).
    Returns sums of each ``per_query_stats`` entry, ``sink_score_0`` summed over prompts, and
    ``n_queries`` / ``n_prompts`` to divide by.
    """
    stats = per_query_stats(pattern)
    n_total = pattern.shape[-1]
    lens = torch.tensor(lengths, device=pattern.device)
    q = torch.arange(n_total, device=pattern.device)
    valid = ((q[None, :] >= 1) & (q[None, :] < lens[:, None])).to(pattern.dtype)  # [b, q]
    sums = {k: (v * valid[:, None, :]).sum(dim=(0, 2)) for k, v in stats.items()}
    sums["sink_score_0"] = sink_scores(pattern, lengths, causal=causal)[:, :, 0].sum(0)
    n_heads = pattern.shape[1]
    sums["n_queries"] = valid.sum().expand(n_heads).clone()
    sums["n_prompts"] = torch.full((n_heads,), float(len(lengths)), device=pattern.device)
    return sums
