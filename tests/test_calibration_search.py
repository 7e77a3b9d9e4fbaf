"""The calibration head search cannot select noise: the permutation screen against scipy's exact
test, Benjamini-Hochberg on a worked case, the false-selection rate on pure noise, planted
heads found (and a head that only helps alone refused), random labels choosing nothing, the
gate, and the controls of every test report."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import permutation_test

from interp.calibration import CalibrationConfig
from interp.calibration_scoring import ChoiceScorer
from interp.calibration_stats import (
    bh_reject,
    minimum_detectable,
    permutations_for,
    power_statement,
    sign_flip_pvalues,
)


def test_sign_flip_pvalues_equal_scipys_exact_test():
    rng = np.random.default_rng(3)
    d = rng.normal(0.4, 1.0, size=(3, 9))
    d[2] = 0.0  # a head that changes nothing
    got = sign_flip_pvalues(d, 60_000, seed=1)
    for row, p in zip(d[:2], got[:2], strict=True):
        exact = permutation_test(
            (row,), np.mean, permutation_type="samples", alternative="greater", n_resamples=10**6
        ).pvalue  # 2^9 sign patterns: scipy enumerates them all
        assert p == pytest.approx(exact, abs=0.01)
    assert got[2] == 1.0


def test_benjamini_hochberg_worked_case():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # thresholds k * 0.05 / 10: 0.005, 0.010, 0.015 ...: the two smallest pass, 0.039 > 0.015
    assert bh_reject(p, 0.05).tolist() == [True, True] + [False] * 8
    assert bh_reject(np.array([]), 0.05).size == 0
    assert 1 / (1 + permutations_for(243, 0.05)) < 0.05 / 243  # the strictest step is reachable


def _screen_picks(deltas: np.ndarray, seed: int) -> np.ndarray:
    from interp.calibration_search import screen

    return screen(deltas, 0.05, seed)[1]


def test_screen_on_pure_noise_rarely_selects_anything():
    """Under the global null (symmetric per-example changes) BH at 5 % keeps any head in at
    most ~5 % of screens; an uncorrected per-head 5 % test would in ~92 % (1 - 0.95^50)."""
    rng = np.random.default_rng(0)
    any_pick = [
        _screen_picks(rng.normal(0, 1, size=(50, 60)) * (rng.random((50, 60)) < 0.3), s).any()
        for s in range(60)
    ]
    assert np.mean(any_pick) <= 0.12


def test_screen_finds_planted_heads():
    rng = np.random.default_rng(1)
    d = rng.normal(0, 1, size=(50, 200))
    d[[4, 17, 33]] += 0.5  # half a standard deviation per example
    picks = _screen_picks(d, 0)
    assert picks[[4, 17, 33]].all() and picks.sum() <= 5


class PlantedScorer(ChoiceScorer):
    """Stands in for ChoiceScorer: every label is 0 and the correct choice's margin is
    ``base`` plus planted per-head changes (``EFFECTS``) and an interaction (``BOTH``)."""

    EFFECTS: dict = {}
    BOTH: dict = {}
    n = 200

    def __init__(self, model, rows, mode="auto", **kw):  # no model run: planted margins
        rng = np.random.default_rng(7)
        self.base = rng.normal(0.1, 1.0, size=self.n)
        self.labels = np.zeros(self.n, dtype=int)
        self.mode = "label"

    def cache_layers(self, layers):
        pass

    def logprobs(self, config=None, on_calibrated=None):
        m = self.base.copy()
        heads = set(map(tuple, config.heads)) if config is not None else set()
        for h in heads:
            m = m + self.EFFECTS.get(h, 0.0)
        for pair, change in self.BOTH.items():
            if set(pair) <= heads:
                m = m + change
        return np.stack([m, np.zeros_like(m)], 1)

    def margins(self, logp):
        return logp[:, 0] - logp[:, 1]

    def predictions(self, logp):
        return logp.argmax(-1)


@pytest.fixture
def planted(monkeypatch, tiny):
    from interp import calibration_search as cs

    monkeypatch.setattr(cs, "ChoiceScorer", PlantedScorer)
    rng = np.random.default_rng(11)
    noise = {(0, h): rng.normal(0, 0.3, size=PlantedScorer.n) for h in range(4)}
    monkeypatch.setattr(PlantedScorer, "EFFECTS", noise)
    monkeypatch.setattr(PlantedScorer, "BOTH", {})
    return cs, noise


def _search(cs, tiny):
    rows = [{"prompt": "x", "choices": [" a", " b"], "label": 0}] * PlantedScorer.n
    # tiny has 2 layers: the official range 0 .. L-2 holds layer 0's four heads
    return cs.search_heads(tiny, rows, options=cs.SearchOptions(first_layer=0), progress=False)


def test_search_ships_a_reliable_head_and_not_one_that_only_helps_alone(planted, tiny):
    cs, noise = planted
    rng = np.random.default_rng(5)
    noise[(0, 1)] = rng.normal(0.4, 0.5, size=PlantedScorer.n)  # helps on most examples
    noise[(0, 2)] = rng.normal(0.3, 0.5, size=PlantedScorer.n)  # helps alone ...
    PlantedScorer.BOTH = {((0, 1), (0, 2)): -1.0}  # ... but undoes L0.H1's gain beside it
    r = _search(cs, tiny)
    assert r.significant and r.config.heads == [(0, 1)]
    assert r.config.provenance["verdict"] == "reliable gain"
    assert r.cv["heads_chosen_in_folds"]["L0.H1"] == 5
    assert r.cv["held_out_margin_gain_ci95"][0] > 0
    kept = {(p["layer"], p["head"]) for p in r.per_head if p["screen_kept"]}
    assert kept == {(0, 1), (0, 2)}  # both pass the screen; the joint step refuses L0.H2


def test_search_on_noise_ships_nothing_and_says_so(planted, tiny):
    cs, _ = planted
    r = _search(cs, tiny)
    assert not r.significant and r.config.heads == []
    assert r.config.provenance["verdict"] == "no reliable gain"
    assert r.config.provenance["significant"] is False


def test_random_labels_choose_no_head_on_a_real_model(tiny):
    """The whole pipeline (real scorer, real calibration) on labels drawn at random."""
    from interp.calibration_search import SearchOptions, search_heads

    rng = np.random.default_rng(0)
    rows = [
        {"prompt": f"{w} is a ", "choices": ["x", "y"], "label": int(rng.integers(2))}
        for w in ("the cat", "one dog", "a red bus", "my house", "an old tree", "that song",
                  "two birds", "our city", "this book", "some rain") * 4
    ]  # fmt: skip
    r = search_heads(tiny, rows, options=SearchOptions(first_layer=0), progress=False)
    assert r.config.heads == [] and not r.significant
    assert len(r.per_head) == 4 and all(0 <= p["p"] <= 1 for p in r.per_head)


def test_evaluate_reports_the_controls(tiny):
    from interp.calibration_search import evaluate

    rows = [
        {"prompt": f"item {i} is the ", "choices": ["a", "b", "c"], "label": i % 3}
        for i in range(12)
    ]
    cfg = CalibrationConfig(str(tiny.cfg.model_name), [(0, 1)])
    r = evaluate(tiny, cfg, "t", rows, random_sets=3, first_layer=0)
    s = r.summary()
    assert s["random_sets"]["n"] == 3 and len(s["random_sets"]["gains"]) == 3
    assert sum(s["choice_position_share_before"]) == pytest.approx(1.0)
    assert sum(s["choice_position_share_after"]) == pytest.approx(1.0)
    assert 0 <= s["share_calibrated"] <= 1 and r.touched.dtype == bool
    assert 0 <= s["random_sets"]["percentile_of_chosen"] <= 100
    none = evaluate(tiny, CalibrationConfig(str(tiny.cfg.model_name), []), "t", rows)
    assert np.array_equal(none.before, none.after) and not none.random_gains


def test_power_statement_by_hand():
    before = np.zeros(1200, dtype=bool)
    after = before.copy()
    after[:24] = True  # +2 points, every change in one direction
    s = power_statement(before, after, effect=0.02)
    z = 1.959964 + 0.841621
    assert s["max_share_changed"] == pytest.approx(0.02**2 * 1200 / z**2 + 0.02**2, rel=1e-5)
    assert s["share_changed"] == pytest.approx(0.02)
    assert s["mde_observed"] == pytest.approx(z * np.std(after - 0.0, ddof=1) / np.sqrt(1200))
    assert minimum_detectable(1.0, 100) == pytest.approx(z / 10, rel=1e-5)


def test_a_head_sets_calibration_does_not_depend_on_the_heads_order(tiny):
    """The search runs each head set once whatever order its heads were chosen in (the folds'
    greedy steps share sets); that rests on this property of the calibration."""
    rows = [
        {"prompt": f"item {i} is the ", "choices": ["a", "b", "c"], "label": i % 3}
        for i in range(12)
    ]
    scorer = ChoiceScorer(tiny, rows)
    name = str(tiny.cfg.model_name)
    heads = [(1, 2), (0, 1), (1, 0)]
    a = scorer.logprobs(CalibrationConfig(name, heads, threshold=0.0))
    b = scorer.logprobs(CalibrationConfig(name, heads[::-1], threshold=0.0))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, scorer.logprobs(None))  # the calibration changes something
