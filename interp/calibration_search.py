"""Choosing heads to calibrate (ACT's head search) with a gate that cannot select noise.

ACT (official ``scripts/calibration.sh``): calibrate one head at a time on a calibration set and
keep the heads whose calibration raises accuracy; candidates are layers 2 .. L-2. On small
calibration sets that screen picks noise (issue 29: one example is 2 points of 48; a screen on
random labels still chose heads), so ours (docs/methods.md section 2):

1. **Screen** every candidate on a continuous paired metric, the margin of the correct choice
   (its log-prob minus the best other one), per example, against the uncalibrated run; a
   one-sided paired sign-flip permutation test per head and Benjamini-Hochberg at 5 % over the
   candidates.
2. **Joint step**: the screened heads (at most ``max_joint``, by p-value then gain) are added
   greedily; a head stays only if the set's mean margin strictly rises and its accuracy does not
   drop (ties no longer accumulate heads).
3. **K = 5 fold cross-validation** of steps 1-2: each fold's set is chosen on the other four
   folds and measured on its own; a head is kept when chosen in >= 4 folds (selection stability).
4. **Gate**: the stable set ships only if the cross-validated margin gain has a 95 % interval
   above 0 and the cross-validated accuracy change is not negative; otherwise the search says
   "no reliable gain" and the config holds no heads (the candidate set stays in its provenance).

Each candidate starts from its layer's cached input (``ChoiceScorer.cache_layers``), exactly.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.calibration import CalibrationConfig
from interp.calibration_data import (  # noqa: F401 (re-exported: the search's inputs)
    BUNDLED_DATASETS,
    DATASET_GROUPS,
    bundled_dataset,
    load_dataset,
    members,
    pooled_rows,
)
from interp.calibration_scoring import ChoiceScorer
from interp.calibration_stats import (
    bh_reject,
    kfold,
    paired_bootstrap,
    permutations_for,
    power_statement,
    sign_flip_pvalues,
    wilson,  # noqa: F401 (re-exported for the command line)
)
from interp.defaults import CALIBRATION_BETA, SINK_THRESHOLD

Head = tuple[int, int]


@dataclass
class SearchOptions:
    """How heads are chosen (defaults: docs/methods.md section 2)."""

    first_layer: int = 2
    beta: float = CALIBRATION_BETA
    threshold: float = SINK_THRESHOLD
    alpha: float = 0.05  # Benjamini-Hochberg false discovery rate of the screen
    folds: int = 5
    min_folds: int = 4  # a head is kept when chosen in this many folds
    max_joint: int = 12  # screened heads tried in the joint step, per fold
    mode: str = "auto"  # choice scoring: auto, label (official), sequence
    seed: int = 0


@dataclass
class SearchResult:
    config: CalibrationConfig  # no heads unless the gate passed
    per_head: list[dict[str, Any]]
    baseline: float  # calibration accuracy, uncalibrated
    calibrated: float  # calibration accuracy with the stable set (in-sample)
    seconds: float
    significant: bool = False
    stable_heads: list[Head] = field(default_factory=list)
    cv: dict[str, Any] = field(default_factory=dict)


def verdict(significant: bool, accuracy_gain: float) -> str:
    """What the gate found, in words: a reliable gain of the margin that also raised the
    cross-validated accuracy, one that left accuracy unchanged, or nothing reliable."""
    if not significant:
        return "no reliable gain"
    return "reliable gain" if accuracy_gain > 0 else "reliable margin gain, accuracy unchanged"


def candidate_heads(model: TransformerBridge, first_layer: int) -> list[Head]:
    """Layers ``first_layer`` .. L-2 (official: the last layer is never calibrated)."""
    return [
        (la, h) for la in range(first_layer, int(model.cfg.n_layers) - 1)
        for h in range(int(model.cfg.n_heads))
    ]  # fmt: skip


def head_effects(
    scorer: ChoiceScorer, heads: list[Head], config: CalibrationConfig, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per head alone: the change of every example's margin, [head, example], and the head's
    accuracy alone, [head]."""
    base = scorer.margins(scorer.logprobs(None))
    deltas = np.zeros((len(heads), len(base)))
    acc = np.zeros(len(heads))
    for i, head in enumerate(tqdm(heads, desc="screen heads", disable=not progress)):
        m = scorer.margins(scorer.logprobs(_with(config, [head])))
        deltas[i], acc[i] = m - base, (m > 0).mean()
    return deltas, acc


def _with(config: CalibrationConfig, heads: list[Head]) -> CalibrationConfig:
    return CalibrationConfig(config.model, list(heads), config.beta, config.threshold)


def screen(deltas: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(p-values, kept by Benjamini-Hochberg) of every head's margin changes [head, example]."""
    p = sign_flip_pvalues(deltas, permutations_for(len(deltas), alpha), seed)
    return p, bh_reject(p, alpha)


def _joint(
    margins_of: Callable[[list[Head]], np.ndarray],
    heads: list[Head],
    deltas: np.ndarray,
    p: np.ndarray,
    kept: np.ndarray,
    rows: np.ndarray,
    base: np.ndarray,
    max_joint: int,
) -> list[Head]:
    """Greedy joint step on ``rows``: strict rise of the mean margin, accuracy not lower."""
    gain = deltas[:, rows].mean(1)
    order = sorted(np.flatnonzero(kept & (gain > 0)), key=lambda i: (p[i], -gain[i]))
    chosen: list[Head] = []
    best_margin, best_acc = base[rows].mean(), (base[rows] > 0).mean()
    for i in order[:max_joint]:
        if not chosen:  # a head alone is already measured
            m = base + deltas[i]
        else:
            m = margins_of([*chosen, heads[i]])
        if m[rows].mean() > best_margin and (m[rows] > 0).mean() >= best_acc:
            chosen.append(heads[i])
            best_margin, best_acc = m[rows].mean(), (m[rows] > 0).mean()
    return chosen


def search_heads(
    model: TransformerBridge,
    calibration_rows: list[dict],
    *,
    options: SearchOptions | None = None,
    progress: bool = True,
    provenance: dict | None = None,
) -> SearchResult:
    """Screen, cross-validate and gate (module docstring); the config saves no heads unless
    the cross-validated gain is reliable."""
    o = options or SearchOptions()
    t0 = time.perf_counter()
    name = str(model.cfg.model_name)
    blank = CalibrationConfig(name, [], o.beta, o.threshold)
    scorer = ChoiceScorer(model, calibration_rows, mode=o.mode)
    heads = candidate_heads(model, o.first_layer)
    scorer.cache_layers(sorted({la for la, _ in heads}))
    base = scorer.margins(scorer.logprobs(None))  # the uncalibrated run, computed once
    n = len(base)
    deltas, acc_alone = head_effects(scorer, heads, blank, progress)
    p_all, kept_all = screen(deltas, o.alpha, o.seed)

    runs: dict[tuple[Head, ...], np.ndarray] = {}

    def margins_of(chosen: list[Head]) -> np.ndarray:
        """Every example's margin under a head set, each set run once: the folds' greedy
        steps often try the same sets (a set's calibration does not depend on its order)."""
        key = tuple(sorted(chosen))
        if key not in runs:
            runs[key] = scorer.margins(scorer.logprobs(_with(blank, list(key))))
        return runs[key]

    folds = kfold(n, o.folds, o.seed) if n >= 2 * o.folds else []
    fold_sets: list[list[Head]] = []
    held = base.copy()  # every example's margin under the set chosen without it
    for k, test in enumerate(tqdm(folds, desc="cross-validate", disable=not progress)):
        train = np.setdiff1d(np.arange(n), test)
        p, kept = screen(deltas[:, train], o.alpha, o.seed + 1 + k)
        chosen = _joint(margins_of, heads, deltas, p, kept, train, base, o.max_joint)
        fold_sets.append(chosen)
        if chosen:
            held[test] = margins_of(chosen)[test]
    counts = Counter(h for chosen in fold_sets for h in chosen)
    stable = [h for h in heads if counts[h] >= o.min_folds]
    after = margins_of(stable) if stable else base

    ok_before, ok_held = base > 0, held > 0
    margin_ci = paired_bootstrap(base, held, seed=o.seed)
    acc_ci = paired_bootstrap(ok_before.astype(float), ok_held.astype(float), seed=o.seed)
    acc_gain = float(ok_held.mean() - ok_before.mean())
    significant = bool(stable) and margin_ci[0] > 0 and acc_gain >= 0
    half = np.random.default_rng(o.seed).permutation(n)
    a, b = half[: n // 2], half[n // 2 :]
    changed = deltas.any(1)
    split_half = (
        float(spearmanr(deltas[changed][:, a].mean(1), deltas[changed][:, b].mean(1))[0])
        if changed.sum() > 2
        else float("nan")
    )
    cv = {
        "folds": o.folds,
        "fold_heads": [[list(h) for h in s] for s in fold_sets],
        "heads_chosen_in_folds": {f"L{la}.H{h}": c for (la, h), c in sorted(counts.items())},
        "held_out_accuracy_before": float(ok_before.mean()),
        "held_out_accuracy_after": float(ok_held.mean()),
        "held_out_accuracy_gain_ci95": list(acc_ci),
        "held_out_margin_gain": float((held - base).mean()),
        "held_out_margin_gain_ci95": list(margin_ci),
        "screen_kept_all_data": int(kept_all.sum()),
        "split_half_spearman": split_half,
        "permutations": permutations_for(len(heads), o.alpha),
    }
    per_head = [
        {
            "layer": la, "head": h, "accuracy": float(acc_alone[i]),
            "margin_gain": float(deltas[i].mean()), "share_changed": float((deltas[i] != 0).mean()),
            "p": float(p_all[i]), "screen_kept": bool(kept_all[i]), "folds_chosen": counts[(la, h)],
        }
        for i, (la, h) in enumerate(heads)
    ]  # fmt: skip
    shipped = stable if significant else []
    config = CalibrationConfig(
        name,
        shipped,
        o.beta,
        o.threshold,
        {
            **(provenance or {}),
            "significant": significant,
            "verdict": verdict(significant, acc_gain),
            "candidate_heads": [list(h) for h in stable],
            "scoring": scorer.mode,
            "first_layer": o.first_layer,
            "last_layer": int(model.cfg.n_layers) - 2,
            "alpha": o.alpha,
            "min_folds": o.min_folds,
            "n_calibration": n,
            "calibration_accuracy_before": float(ok_before.mean()),
            "calibration_accuracy_after": float((after > 0).mean()),
            "cross_validation": cv,
        },
    )
    return SearchResult(
        config,
        per_head,
        float(ok_before.mean()),
        float((after > 0).mean()),
        time.perf_counter() - t0,
        significant,
        stable,
        cv,
    )


@dataclass
class TestResult:
    """One test split before and after a calibration, with the controls of every report."""

    name: str
    before: np.ndarray  # [n] bool: right without the calibration
    after: np.ndarray  # [n] bool: right with it
    before_pred: np.ndarray | None = None  # [n] predicted choice position
    after_pred: np.ndarray | None = None
    touched: np.ndarray | None = None  # [n] bool: some chosen head calibrated something
    random_gains: list[float] = field(default_factory=list)  # same-size random head sets
    n_choices: int = 2

    @property
    def interval(self) -> tuple[float, float]:
        return paired_bootstrap(self.before.astype(float), self.after.astype(float))

    @property
    def gain(self) -> float:
        return float(self.after.mean() - self.before.mean())

    def summary(self) -> dict[str, Any]:
        lo, hi = self.interval
        out: dict[str, Any] = {
            "n_test": len(self.before),
            "test_accuracy_before": float(self.before.mean()),
            "test_accuracy_after": float(self.after.mean()),
            "test_difference_ci95": [lo, hi],
            "power": power_statement(self.before, self.after),
        }
        if self.before_pred is not None and self.after_pred is not None:
            out["choice_position_share_before"] = _shares(self.before_pred, self.n_choices)
            out["choice_position_share_after"] = _shares(self.after_pred, self.n_choices)
        if self.touched is not None:
            d = self.after.astype(float) - self.before.astype(float)
            t = self.touched
            out["share_calibrated"] = float(t.mean())
            out["gain_where_calibrated"] = float(d[t].mean()) if t.any() else None
            out["gain_where_not_calibrated"] = float(d[~t].mean()) if (~t).any() else None
        if self.random_gains:
            r = np.array(self.random_gains)
            below = (r < self.gain).mean() + 0.5 * (r == self.gain).mean()
            out["random_sets"] = {
                "n": len(r),
                "gains": [float(x) for x in r],
                "percentile_of_chosen": float(100 * below),
                "p95": float(np.percentile(r, 95)),
                "beats_p95": bool(self.gain > np.percentile(r, 95)),
            }
        return out


def _shares(pred: np.ndarray, n_choices: int) -> list[float]:
    return [float((pred == k).mean()) for k in range(n_choices)]


def evaluate(
    model: TransformerBridge,
    config: CalibrationConfig,
    name: str,
    rows: list[dict],
    *,
    random_sets: int = 20,
    first_layer: int = 2,
    seed: int = 0,
    mode: str = "auto",
    progress: bool = False,
) -> TestResult:
    """Accuracy on ``rows`` without and with ``config`` (same examples, paired), the share of
    each predicted choice position, which inputs the chosen heads calibrate at all, and the
    gains of ``random_sets`` random head sets of the same size and beta (drawn from layers
    ``first_layer`` .. L-2)."""
    scorer = ChoiceScorer(model, rows, mode=mode)
    base = scorer.logprobs(None)
    before = scorer.predictions(base) == scorer.labels
    result = TestResult(name, before, before, scorer.predictions(base), scorer.predictions(base))
    result.n_choices = scorer.n_choices
    result.touched = np.zeros(len(rows), dtype=bool)
    if not config.heads:
        return result
    pool = candidate_heads(model, first_layer)
    scorer.cache_layers(sorted({la for la, _ in pool} | {la for la, _ in config.heads}))
    got: dict[str, np.ndarray] = {}
    lp = scorer.logprobs(config, on_calibrated=lambda t: got.update(touched=t))
    result.after = scorer.predictions(lp) == scorer.labels
    result.after_pred, result.touched = scorer.predictions(lp), got["touched"]
    rng = np.random.default_rng(seed)
    k = min(len(config.heads), len(pool))
    for _ in tqdm(range(random_sets), desc="random head sets", disable=not progress):
        pick = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
        ok = scorer.predictions(scorer.logprobs(_with(config, pick))) == scorer.labels
        result.random_gains.append(float(ok.mean() - before.mean()))
    return result
