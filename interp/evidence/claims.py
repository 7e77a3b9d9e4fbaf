"""One row of evidence per (method, role): the method's AUC beside every baseline's, with
intervals, the exact null's p-value, seed spread, and the verdict of the claims rule.

The claims rule (docs/methods.md, "Evidence"): a method *identifies* a role only where the lower
end of its 95 % interval is above the point AUC of the best baseline AND its AUC beats a random
ranking (exact one-sided p < 0.05). Otherwise the verdict names what it does not beat.

A stochastic method (an SAE trained from a seed) gives one score vector per seed. Its AUC is the
mean over seeds; its interval resamples heads (the same resample for every seed) and averages
the seeds' AUCs on each resample, so it covers the head sampling of the seed-mean; the seeds'
own spread (std, min, max) is reported beside it, and every seed's AUC is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from interp.evidence.auc import auc, bootstrap_aucs, p_value, percentile_interval

ALPHA = 0.05  # the random-ranking null must be rejected at this level
LEVEL = 0.95  # bootstrap interval
N_BOOT = 2000


def score_evidence(
    scores: np.ndarray, truth: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """AUC, interval and null p-value of ``scores`` ([heads], or [seeds, heads] for a
    stochastic method) against the bool ``truth`` [heads]."""
    truth = np.asarray(truth, dtype=bool)
    runs = np.atleast_2d(np.asarray(scores, dtype=float))
    per_seed = np.array([auc(s, truth) for s in runs])
    boots = np.mean([bootstrap_aucs(s, truth, n_boot=n_boot, seed=seed) for s in runs], axis=0)
    m, n = int(truth.sum()), int((~truth).sum())
    out: dict[str, Any] = {
        "auc": float(per_seed.mean()),
        "interval": list(percentile_interval(boots, LEVEL)),
        "p_null": p_value(float(per_seed.mean()), m, n),
        "n_positive": m,
        "n_negative": n,
    }
    if len(runs) > 1:
        out |= {
            "seeds": [float(x) for x in per_seed],
            "auc_std": float(per_seed.std(ddof=1)),
            "auc_min": float(per_seed.min()),
            "auc_max": float(per_seed.max()),
        }
    return out


def verdict(method: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]) -> str:
    """The claims rule on a method's evidence and its baselines' (``score_evidence`` dicts)."""
    lower = method["interval"][0]
    if method["p_null"] >= ALPHA:
        return f"not better than a random ranking (p = {method['p_null']:.2g})"
    if baselines:
        name, best = max(baselines.items(), key=lambda kv: kv[1]["auc"])
        if lower <= best["auc"]:
            return f"does not beat {name} (AUC {best['auc']:.2f}; lower bound {lower:.2f})"
    return "identifies"


def evidence_row(
    scores: np.ndarray,
    truth: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """The method's evidence, each baseline's (same heads, same truth) and the verdict."""
    method = score_evidence(scores, truth, n_boot=n_boot, seed=seed)
    base = {
        name: score_evidence(b, truth, n_boot=n_boot, seed=seed) for name, b in baselines.items()
    }
    best = max(base, key=lambda k: base[k]["auc"]) if base else None
    return {
        **method,
        "baselines": base,
        "best_baseline": best,
        "verdict": verdict(method, base),
    }
