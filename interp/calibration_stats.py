"""Statistics of the calibration search: paired sign-flip tests, Benjamini-Hochberg, intervals,
cross-validation folds and the power of a paired comparison."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy.stats import false_discovery_control, norm


def sign_flip_pvalues(
    deltas: Float[np.ndarray, "head example"], n_permutations: int, seed: int = 0
) -> Float[np.ndarray, " head"]:
    """One-sided paired permutation test per row: H0 "the per-example change is symmetric
    about 0" against "its mean is > 0". Signs are flipped at random (the same flips for every
    row, so rows stay comparable); p = (1 + #{mean* >= mean}) / (1 + n_permutations), never 0.
    A row of zeros (a head that changes nothing) gets p = 1."""
    deltas = np.asarray(deltas, dtype=float)
    n = deltas.shape[1]
    observed = deltas.mean(1)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(len(deltas))
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))
    for start in range(0, n_permutations, 4096):
        size = min(4096, n_permutations - start)
        signs = rng.integers(0, 2, size=(size, n)) * 2.0 - 1.0
        null = signs @ deltas.T / n  # [size, head]
        exceed += (null >= observed - tol).sum(0)
    p = (1 + exceed) / (1 + n_permutations)
    p[~deltas.any(1)] = 1.0
    return p


def permutations_for(n_tests: int, alpha: float) -> int:
    """Enough sign flips that the smallest possible p-value (1 / (1 + B)) can pass the strictest
    Benjamini-Hochberg threshold alpha / n_tests four times over."""
    return max(10_000, int(np.ceil(4 * n_tests / alpha)))


def bh_reject(p: Float[np.ndarray, " test"], alpha: float) -> np.ndarray:
    """Benjamini-Hochberg at false discovery rate ``alpha``: True where the test is kept
    (scipy's adjusted p-values <= alpha)."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    return false_discovery_control(p, method="bh") <= alpha


def kfold(n: int, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint held-out index sets covering 0 .. n-1 (shuffled with ``seed``)."""
    from sklearn.model_selection import KFold

    return [test for _, test in KFold(k, shuffle=True, random_state=seed).split(np.arange(n))]


def paired_bootstrap(
    before: np.ndarray, after: np.ndarray, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % bootstrap interval of mean(after) - mean(before) over the same examples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(before), size=(n, len(before)))
    diffs = after[idx].mean(1) - before[idx].mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def minimum_detectable(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean paired difference a two-sided level-``alpha`` test finds with probability
    ``power`` on ``n`` examples whose per-example differences have standard deviation ``sd``
    (normal approximation): (z_{1-alpha/2} + z_power) * sd / sqrt(n)."""
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / np.sqrt(n))


def power_statement(before: np.ndarray, after: np.ndarray, effect: float = 0.02) -> dict:
    """What a paired test split can see (80 % power, two-sided 5 %).

    ``mde_observed``: the smallest accuracy change detectable with the per-example changes seen
    here. ``max_share_changed``: a net gain of ``effect`` is detectable on this many examples
    only if the calibration changes at most this share of the answers (a change of answers
    q with net gain e has per-example sd sqrt(q - e^2); solve MDE(sd, n) = e for q)."""
    d = after.astype(float) - before.astype(float)
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    z = norm.ppf(0.975) + norm.ppf(0.8)
    return {
        "n": n,
        "share_changed": float((d != 0).mean()),
        "mde_observed": minimum_detectable(sd, n) if sd > 0 else 0.0,
        "effect": effect,
        "max_share_changed": float(effect**2 * n / z**2 + effect**2),
    }
