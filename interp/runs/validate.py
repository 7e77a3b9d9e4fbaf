"""Causal validation of detected heads by uniform-attention masking (docs/methods.md s. 1).

Mask the top-K heads of a detector (attention made uniform over the visible context, as in Wu et
al. 2024) and, separately, ``n_draws`` sets of K random heads drawn from outside the top E heads;
report how much the detector's validation metric gets worse in each case. E follows the official
needle_in_haystack_with_mask.py, which draws random heads outside the top-100 of a 1024-head
model: E = max(K, ceil(100 / 1024 x number of heads)) (27 of SmolLM2's 270), so near-top heads
never count as "random" (``control_exclusion``). Two random controls:

- ``random``: K heads uniformly from all heads outside the top E (the paper's control);
- ``random_same_layers``: for each top head, a random head outside the top E of the same layer
  (falls back to any head outside the top E when the layer has none left). Small models have
  layers (SmolLM2: layer 0) where masking any head breaks everything; this control removes that
  confound.

Validation metrics:

- ``retrieval``: needle-in-a-haystack accuracy (answers whose ROUGE-1 recall of the needle's
  short answer is > 0.5) on held-out needles (needles 3-5, not used for detection), lengths 256
  and 512, depths 25 % and 75 % (mean ROUGE-1 recall is reported too). As in the official code
  the heads are masked on the decoding steps only; the prompt is prefilled unmasked.
- ``sink``: mean next-token loss on 256-token windows of the bundled haystack text.
- ``induction``: mean next-token loss on the repeated half of fresh repeated random sequences.

``drop`` is signed so that positive means worse (accuracy lost, or loss gained).
Each control reports a Monte Carlo p-value of the top heads' drop (``control_p``); the default
20 draws per control are the fewest that can give p < 0.05 (5 could not go below 1/6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.uniform import uniform_attention_hooks
from interp.errors import InputError
from interp.heads.base import DetectorResult
from interp.heads.metrics import Hooks, ValidationMetric, mean_loss  # noqa: F401 (re-exported)
from interp.runs.plots import validation_png

VALIDATION_DRAWS = 20  # random head sets per control: min p = 1/21


def declared_metric(detector: str) -> Callable[..., ValidationMetric]:
    """The ``validation_metric`` detector ``detector`` declares on its class (nothing is built
    yet); a clear error for a detector without one."""
    from interp.heads import REGISTRY, get_detector

    declared = get_detector(detector).validation_metric
    if declared is None:
        have = [n for n in REGISTRY if REGISTRY[n].validation_metric is not None]
        raise InputError(f"no validation metric for detector {detector!r}; use {', '.join(have)}")
    return declared


def validation_metric(model: TransformerBridge, detector: str, seed: int = 1) -> ValidationMetric:
    """The validation metric detector ``detector`` declares, built for ``model``."""
    return declared_metric(detector)(model, seed=seed)


def control_exclusion(n_heads: int, k: int) -> int:
    """How many top-ranked heads the random controls never draw: the official top-100 of 1024
    heads, scaled to ``n_heads`` (rounded up), and at least ``k``."""
    return max(k, math.ceil(100 / 1024 * n_heads))


def default_k(model: TransformerBridge) -> int:
    """5 % of all heads (Wu et al. mask K = 50 of 1024 heads, about 5 %)."""
    return max(1, math.ceil(0.05 * int(model.cfg.n_layers) * int(model.cfg.n_heads)))


def random_heads(rest: list[tuple[int, int]], k: int, rng: np.random.Generator) -> list:
    """``k`` distinct heads drawn uniformly from ``rest``."""
    return [rest[i] for i in sorted(rng.choice(len(rest), size=k, replace=False))]


def same_layer_heads(
    top: list[tuple[int, int]], rest: list[tuple[int, int]], rng: np.random.Generator
) -> list[tuple[int, int]]:
    """One random head of ``rest`` per head of ``top``, from the same layer when possible."""
    pool = list(rest)
    picked = []
    for layer, _ in top:
        same = [i for i, (la, _) in enumerate(pool) if la == layer]
        i = int(rng.choice(same)) if same else int(rng.integers(len(pool)))
        picked.append(pool.pop(i))
    return picked


def harm_label(metric: str, higher_is_better: bool) -> str:
    """How the signed ``drop`` reads for this metric: accuracy drops, a loss increases."""
    return f"drop in {metric}" if higher_is_better else f"increase in {metric}"


def control_p(top_drop: float, random_drops: np.ndarray) -> float:
    """Monte Carlo p-value of the top heads' drop against the random sets' drops: (1 + the
    number of random drops >= it) / (draws + 1), so n draws cannot give less than 1 / (n + 1)
    (20 draws are the fewest that can reach p < 0.05)."""
    random_drops = np.asarray(random_drops, dtype=float)
    return float((1 + (random_drops >= top_drop).sum()) / (len(random_drops) + 1))


def _spread(table: pd.DataFrame, condition: str) -> dict[str, float]:
    d = table[table.condition == condition]["drop"]
    if not len(d):
        return {}
    top = float(table[table.condition == "top"]["drop"].iloc[0])
    return {
        f"{condition}_drop_mean": float(d.mean()),
        f"{condition}_drop_std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
        f"{condition}_drop_min": float(d.min()),
        f"{condition}_drop_max": float(d.max()),
        f"{condition}_p": control_p(top, d.to_numpy()),
    }


@dataclass
class Validation:
    detector: str
    metric: str
    table: pd.DataFrame  # one row per condition
    summary: dict[str, Any]


def validate(
    model: TransformerBridge,
    result: DetectorResult,
    *,
    k: int | None = None,
    n_draws: int = VALIDATION_DRAWS,
    seed: int = 0,
    progress: bool = True,
) -> Validation:
    """Mask the top-``k`` heads of ``result`` vs ``n_draws`` random ``k``-sets outside them."""
    metric = validation_metric(model, result.name)
    k = k or default_k(model)
    ranked = result.table.sort_values("score", ascending=False)
    heads = list(zip(ranked.layer.tolist(), ranked["head"].tolist(), strict=True))
    if not 1 <= k <= len(heads) // 2:
        raise InputError(f"k must be between 1 and {len(heads) // 2} (half the heads), got {k}")
    exclude = control_exclusion(len(heads), k)
    top, rest = heads[:k], heads[exclude:]
    rng = np.random.default_rng(seed)
    conditions = [("none", -1, []), ("top", -1, top)]
    for d in range(n_draws):
        conditions.append(("random", d, random_heads(rest, k, rng)))
    for d in range(n_draws):
        conditions.append(("random_same_layers", d, same_layer_heads(top, rest, rng)))
    rows = []
    for kind, draw, masked in tqdm(
        conditions, desc=f"validate {result.name}", disable=not progress
    ):
        values = metric.evaluate(uniform_attention_hooks(model, masked))
        heads_str = " ".join(f"L{la}.H{h}" for la, h in sorted(masked))
        rows.append(
            {"condition": kind, "draw": draw, "k": len(masked), "heads": heads_str, **values}
        )
    table = pd.DataFrame(rows)
    base = float(table[metric.metric].iloc[0])
    sign = 1.0 if metric.higher_is_better else -1.0
    table["drop"] = sign * (base - table[metric.metric])
    summary: dict[str, Any] = {
        "detector": result.name,
        "metric": metric.metric,
        "higher_is_better": metric.higher_is_better,
        "k": k,
        "random_excludes_top": exclude,
        "n_draws": n_draws,
        "seed": seed,
        "baseline": base,
        "top_value": float(table[metric.metric].iloc[1]),
        "top_drop": float(table["drop"].iloc[1]),
        **_spread(table, "random"),
        **_spread(table, "random_same_layers"),
        # how many different random k-sets the control can draw at all (1: no control)
        "random_sets_possible": math.comb(len(rest), k),
        "metric_inputs": metric.inputs,
    }
    if summary["random_sets_possible"] < n_draws:
        summary["control_warning"] = (
            f"only {summary['random_sets_possible']} different random {k}-set(s) exist among "
            f"the {len(rest)} heads outside the top {exclude}: the random control cannot vary "
            "(too few heads for this k); read top vs random with care"
        )
    return Validation(result.name, metric.metric, table, summary)


def run_validation(
    model: TransformerBridge,
    detector: str,
    out: Path,
    *,
    k: int | None = None,
    n_draws: int = VALIDATION_DRAWS,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Validation, list[Path]]:
    """Validate ``detector`` and write ``out/validation/<detector>.{parquet,json,png}``.

    The detector table of a scan in ``out`` is reused when its inputs match the scan defaults;
    otherwise the detector runs first (and is stored like a scan would).
    """
    from interp.runs.folder import RunFolder
    from interp.runs.scan import detector_spec

    declared_metric(detector)  # fail early on a detector without a metric (built once, later)
    folder = RunFolder(out)
    with folder.lock():
        result, _, _ = folder.run_detector(
            model, detector_spec(detector, "small", model=model), progress=progress
        )
        v = validate(model, result, k=k, n_draws=n_draws, seed=seed, progress=progress)
        paths = [
            *folder.write_validation(detector, v.table, v.summary, str(model.cfg.model_name)),
            validation_png(
                v.table,
                harm_label(v.metric, v.summary["higher_is_better"]),
                folder.validation_dir / f"{detector}.png",
                f"{model.cfg.model_name}: masking top-{v.summary['k']} {detector} heads",
            ),
        ]
    return v, paths
