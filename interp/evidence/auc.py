"""ROC AUC of a head ranking with the two things that make it evidence: the exact null of a random
ranking for the class sizes at hand, and a bootstrap interval over heads (docs/methods.md,
"Evidence").

- ``auc(scores, truth)``: the Mann-Whitney form, AUC = (R_pos - m(m+1)/2) / (m n), with average
  ranks for tied scores (ties count one half), equal to scikit-learn's ``roc_auc_score``.
- ``null_distribution(m, n)``: every value the AUC of a uniformly random strict ranking of m
  positives and n negatives can take and its exact probability, from the count of permutations
  with Mann-Whitney statistic U (the recurrence c(m, n, u) = c(m-1, n, u-n) + c(m, n-1, u)).
  With 6 positives among 8 heads, P(AUC >= 11/12) = 2/28 = 0.071: a high AUC on few negatives
  is no finding.
- ``p_value(value, m, n)``: P(AUC_random >= value), one-sided.
- ``bootstrap_interval(scores, truth)``: heads resampled with replacement within each class
  (stratified, so every resample has both classes), percentile interval of the AUC.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.stats import rankdata

from interp.errors import InputError

MAX_NULL_CELLS = 5_000_000  # m * n * (m * n) / 2 work cells of the exact recurrence


def _check(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float).reshape(-1)
    truth = np.asarray(truth, dtype=bool).reshape(-1)
    if scores.shape != truth.shape:
        raise InputError(f"{len(scores)} scores for {len(truth)} labels: give one score per head")
    if not np.isfinite(scores).all():
        raise InputError("scores must be finite numbers: replace NaN (a head not scored) first")
    if truth.all() or not truth.any():
        raise InputError("an AUC needs at least one positive and one negative head")
    return scores, truth


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC of ``scores`` [heads] against the bool ``truth`` [heads] (ties count 1/2)."""
    scores, truth = _check(scores, truth)
    m, n = int(truth.sum()), int((~truth).sum())
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - m * (m + 1) / 2) / (m * n))


@cache
def _null_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of orderings of m positives and n negatives with each U = 0 .. m n (U counts the
    (positive, negative) pairs where the positive ranks above)."""
    # rows[j][u]: orderings of i positives and j negatives with statistic u, built up in i
    rows = [[1] for _ in range(n + 1)]  # i = 0: one ordering, U = 0
    for i in range(1, m + 1):
        new: list[list[int]] = []
        for j in range(n + 1):
            size = i * j + 1
            c = [0] * size
            above = rows[j]  # (i - 1, j): the largest item is a positive, it beats all j
            for u, v in enumerate(above):
                c[u + j] += v
            if j:
                left = new[j - 1]  # (i, j - 1): the largest item is a negative
                for u, v in enumerate(left):
                    c[u] += v
            new.append(c)
        rows = new
    return tuple(rows[n])


def null_distribution(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, probabilities): the exact distribution of the AUC of a random ranking of ``m``
    positive and ``n`` negative heads (no ties)."""
    if m < 1 or n < 1:
        raise InputError(f"the null needs >= 1 positive and >= 1 negative, got {m} and {n}")
    if m * n * m * n > 2 * MAX_NULL_CELLS:
        raise InputError(
            f"the exact null of {m} positives and {n} negatives is too large to count; use "
            "p_value, which falls back to the normal approximation there"
        )
    counts = np.array(_null_counts(min(m, n), max(m, n)), dtype=float)  # symmetric in m, n
    return np.arange(m * n + 1) / (m * n), counts / counts.sum()


def p_value(value: float, m: int, n: int) -> float:
    """P(AUC of a random ranking >= ``value``) for ``m`` positives and ``n`` negatives: exact
    where the counts fit (``null_distribution``), else the normal approximation of the
    Mann-Whitney statistic (mean 1/2, variance (m + n + 1) / (12 m n))."""
    if m * n * m * n <= 2 * MAX_NULL_CELLS:
        values, probs = null_distribution(m, n)
        return float(probs[values >= value - 1e-12].sum())
    from scipy.stats import norm

    sd = np.sqrt((m + n + 1) / (12 * m * n))
    return float(norm.sf((value - 0.5) / sd))


def bootstrap_aucs(
    scores: np.ndarray, truth: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """[n_boot] AUCs of stratified resamples of the heads (positives and negatives resampled
    with replacement within their class, so each resample keeps the class sizes)."""
    scores, truth = _check(scores, truth)
    rng = np.random.default_rng(seed)
    pos, neg = scores[truth], scores[~truth]
    a = pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))]  # [boot, m]
    b = neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))]  # [boot, n]
    # AUC = mean over (positive, negative) pairs of 1[a > b] + 1/2 1[a == b]
    wins = (a[:, :, None] > b[:, None, :]).sum((1, 2)) + 0.5 * (a[:, :, None] == b[:, None, :]).sum(
        (1, 2)
    )
    return wins / (len(pos) * len(neg))


def percentile_interval(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values."""
    tail = (1 - level) / 2
    return float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail))


def bootstrap_interval(
    scores: np.ndarray, truth: np.ndarray, *, level: float = 0.95, n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:  # fmt: skip
    """Percentile ``level`` interval of the AUC over stratified bootstrap resamples of heads."""
    return percentile_interval(bootstrap_aucs(scores, truth, n_boot=n_boot, seed=seed), level)
