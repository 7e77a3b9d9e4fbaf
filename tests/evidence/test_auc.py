"""The AUC, its exact null and its bootstrap interval against independent references: scikit-learn,
brute-force enumeration of every ranking, scipy's exact Mann-Whitney test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from interp.errors import InputError
from interp.evidence.auc import auc, bootstrap_aucs, bootstrap_interval, null_distribution, p_value


def test_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 5, size=30).astype(float)  # many ties
        truth = rng.random(30) < 0.3
        truth[:2] = [True, False]
        assert auc(scores, truth) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


@pytest.mark.parametrize("m,n", [(1, 1), (2, 3), (3, 4), (6, 2), (4, 4)])
def test_null_equals_every_ranking_enumerated(m, n):
    values, probs = null_distribution(m, n)
    counts: dict[float, int] = {}
    total = 0
    for pos in itertools.combinations(range(m + n), m):  # the ranks the positives take
        truth = np.zeros(m + n, dtype=bool)
        truth[list(pos)] = True
        a = round(auc(np.arange(m + n, dtype=float), truth), 9)
        counts[a] = counts.get(a, 0) + 1
        total += 1
    brute = np.array([counts.get(round(v, 9), 0) / total for v in values])
    np.testing.assert_allclose(probs, brute, atol=1e-12)


def test_the_issue_case_six_positives_two_negatives():
    """6 of 8 heads positive: a random ranking reaches AUC >= 11/12 with probability 2/28."""
    assert p_value(11 / 12, 6, 2) == pytest.approx(2 / 28)
    assert p_value(1.0, 6, 2) == pytest.approx(1 / 28)


def test_p_value_equals_scipy_exact_mann_whitney():
    rng = np.random.default_rng(1)
    for m, n in [(3, 9), (6, 20), (8, 24)]:
        scores = rng.permutation(m + n).astype(float)  # no ties: the exact test applies
        truth = np.zeros(m + n, dtype=bool)
        truth[rng.choice(m + n, m, replace=False)] = True
        ref = mannwhitneyu(
            scores[truth], scores[~truth], alternative="greater", method="exact"
        ).pvalue
        assert p_value(auc(scores, truth), m, n) == pytest.approx(ref, rel=1e-9)


def test_large_classes_use_the_normal_approximation_close_to_exact():
    m, n = 15, 255  # SmolLM2's 15 retrieval heads of 270
    assert p_value(0.5, m, n) == pytest.approx(0.5, abs=0.02)
    ref = mannwhitneyu(np.arange(m) + 200.0, np.arange(n), alternative="greater",
                       method="asymptotic", use_continuity=False).pvalue  # fmt: skip
    got = p_value(auc(np.r_[np.arange(m) + 200.0, np.arange(n)], np.arange(m + n) < m), m, n)
    assert got == pytest.approx(ref, rel=0.05)


def test_bootstrap_equals_scikit_learn_on_the_same_resamples():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=24)
    truth = np.arange(24) < 6
    scores[truth] += 1.0
    boots = bootstrap_aucs(scores, truth, n_boot=50, seed=7)
    draw = np.random.default_rng(7)
    pos, neg = scores[truth], scores[~truth]
    a = pos[draw.integers(0, 6, size=(50, 6))]
    b = neg[draw.integers(0, 18, size=(50, 18))]
    for k in range(50):
        y = np.r_[np.ones(6, bool), np.zeros(18, bool)]
        assert boots[k] == pytest.approx(roc_auc_score(y, np.r_[a[k], b[k]]), abs=1e-12)


def test_bootstrap_interval_brackets_the_estimate_and_is_degenerate_when_perfect():
    rng = np.random.default_rng(3)
    scores, truth = rng.normal(size=40), np.arange(40) < 10
    scores[truth] += 1.0
    lo, hi = bootstrap_interval(scores, truth)
    assert lo < auc(scores, truth) < hi
    assert bootstrap_interval(truth.astype(float), truth) == (1.0, 1.0)


def test_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="one positive and one negative"):
        auc(np.ones(4), np.ones(4, bool))
    with pytest.raises(InputError, match="one score per head"):
        auc(np.ones(3), np.ones(4, bool))
    with pytest.raises(InputError, match="finite"):
        auc(np.array([1.0, np.nan]), np.array([True, False]))
