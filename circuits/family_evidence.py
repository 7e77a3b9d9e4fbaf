"""Every head-family method beside the trivial baselines (``interp families``; issue of causal
role scores): one evidence row per method with its ROC AUC, bootstrap interval, exact-null
p-value, seed spread and the claims rule's verdict (``interp.evidence.claims``).

Reference (what a head "has" the role against): the family's causal role score in the run
folder when it holds one with exact effects (``sink_need`` / ``retrieval_effect`` /
``anchor_effect``: label = exact single-head effect > its threshold, on the heads it checked);
otherwise the family's attention detector labels (on the heads it scores). The causal
detector checks the heads its own estimate ranks highest, so that reference favours the causal
estimate; ``benchmarks/causal_roles.py`` builds the unbiased one (+ random heads) for SmolLM2.

Methods: the attention detector's score, the causal estimate (when in the run folder), the
attention-output SAE family score (one score vector per SAE set given, i.e. per seed), the
discrete-code SAE node score (per seed) and write change. Baselines: layer index both ways,
mean write norm, s_0 (first-token attention mass).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformer_lens.model_bridge import TransformerBridge

from interp.evidence import baselines as b
from interp.evidence.claims import evidence_row
from interp.heads.base import DetectorResult
from interp.runs.folder import RunFolder
from interp.sae.family_scores import FAMILY_DETECTORS, sae_family_scores
from interp.sae.topk import TopKSAE


def reference(
    causal: DetectorResult | None, family: str, labels: np.ndarray, scored: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str]:
    """(truth [heads], scored [heads], description) of the family's reference (``causal``:
    the run folder's causal score of the family, if any)."""
    if causal is not None and "exact" in causal.table:
        t = causal.table.sort_values(["layer", "head"])
        exact = t["exact"].to_numpy(dtype=float)
        checked = ~np.isnan(exact)
        thr = float(t["threshold"].iloc[0]) if "threshold" in t else 0.01
        truth = np.nan_to_num(exact) > thr
        if 0 < truth[checked].sum() < checked.sum():
            desc = (f"causal: exact effect of {FAMILY_DETECTORS[family]} > {thr:g} nats on the "
                    f"{int(checked.sum())} heads it checked")  # fmt: skip
            return truth, checked, desc
    return labels, scored, f"the {family} detector's labels"


def causal_options(run: Path, family: str) -> dict[str, Any]:
    """The options the run folder's causal score of ``family`` was computed with (its
    manifest's config; {} when there is none): the SAE family score uses the same contrast."""
    from dataclasses import fields

    from interp.errors import InputError
    from interp.heads import get_detector

    name = FAMILY_DETECTORS[family]
    try:
        config = RunFolder(run).manifest().get("detectors", {}).get(name, {}).get("config", {})
    except InputError:
        return {}
    known = {f.name for f in fields(get_detector(name).Config)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}


def baselines(model: TransformerBridge) -> dict[str, np.ndarray]:
    """Trivial head rankings: layer index both ways, mean write norm, s_0."""
    from interp.inputs.prompts import load_prompts
    from interp.inputs.text import text_samples

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    layer = b.layer_index(n_layers, n_heads)
    return {
        "layer index": layer,
        "layer index (reversed)": -layer,
        "write norm": b.write_norm(model, text_samples(model)),
        "s_0": b.first_token_mass(model, load_prompts()[:8]),
    }


def family_evidence(
    model: TransformerBridge,
    family: str,
    run: Path,
    labels: np.ndarray,
    scored: np.ndarray,
    methods: dict[str, np.ndarray],
    attn_saes: Sequence[dict[int, TopKSAE]] = (),
    base: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Evidence rows of every method (``methods``: name -> [heads] or [seeds, heads], plus the
    run folder's causal estimate and the attention-output SAE score per SAE set) against the
    family's reference. ``base``: the ``baselines`` of the model (computed here if None; they
    do not depend on the family, so ``run_families`` computes them once)."""
    causal = RunFolder(run).load_detector(FAMILY_DETECTORS[family])
    truth, on, desc = reference(causal, family, labels, scored)
    methods = dict(methods)
    if causal is not None and "score" in causal.table:
        t = causal.table.sort_values(["layer", "head"])
        methods["causal estimate"] = t["score"].to_numpy(dtype=float)
    if attn_saes:
        options = causal_options(run, family)
        methods["attention-output SAE"] = np.stack(
            [sae_family_scores(model, s, family, **options).reshape(-1).numpy() for s in attn_saes]
        )
    base = {name: v[on] for name, v in (base if base is not None else baselines(model)).items()}
    out: dict[str, Any] = {
        "reference": desc,
        "n_heads": int(on.sum()),
        "n_with_role": int(truth[on].sum()),
        "methods": {},
        "scores": {name: np.atleast_2d(v).tolist() for name, v in methods.items()},
    }
    if not 0 < truth[on].sum() < on.sum():
        out["skipped"] = "the reference has no heads with the role, or only such heads"
        return out
    for name, scores in methods.items():
        s = np.nan_to_num(np.atleast_2d(np.asarray(scores, dtype=float)))[:, on]
        out["methods"][name] = evidence_row(s, truth[on], base)
    return out
