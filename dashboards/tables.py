"""Per-head score tables for the dashboard, read from a run folder (``interp scan``) or computed.

``head_scores`` returns one row per (layer, head) with one numeric column per score:
``<detector>`` is the detector's ``score`` column (sink s_0, retrieval copy-paste score, induction,
previous-token, duplicate-token; the anchor detector's score, the attention span, is
``anchor:span``), ``<detector>:<column>`` any other
numeric column of its table (``anchor:mean_waad``, ``anchor:mean_fai``, ``sink:hidden_sink_rate``
...), and the ``head_stats.parquet`` statistics under their own names (entropy, mean_distance ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError, InterpError
from interp.heads import detector_names
from interp.heads.base import DetectorResult
from interp.inputs.prompts import load_prompts, model_prompts_file
from interp.models.info import is_causal
from interp.runs.folder import RunFolder
from interp.runs.scan import detector_spec
from interp.stats.heads import SCORES, head_stats_table

#: detectors computed when no run folder is given: the fast ones (seconds on a CPU). The
#: retrieval detector needs minutes of decoding; run ``interp scan`` for it.
FAST_DETECTORS = tuple(detector_names(dashboard=True))  # the registry says which are fast
#: score columns whose detector name would not say what they hold
RENAME = {"anchor": "anchor:span"}
PREFERRED = ("sink", "retrieval", "induction", "previous_token", "duplicate_token", "anchor:span")
_SKIP = {"layer", "head", "kv_head", "threshold", "n_prompts", "n_tokens", "n_tests_counted"}


def merge_scores(stats: pd.DataFrame | None, results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (layer, head); see the module docstring for the column names."""
    frames = []
    if stats is not None:
        frames.append(stats[["layer", "head", *[c for c in SCORES if c in stats]]])
    for name, table in results.items():
        cols = {"score": RENAME.get(name, name)}
        for c in table.columns:
            if c not in _SKIP and c != "score" and pd.api.types.is_numeric_dtype(table[c]):
                if not pd.api.types.is_bool_dtype(table[c]):
                    cols[c] = f"{name}:{c}"
        frames.append(table[["layer", "head", *cols]].rename(columns=cols))
    if not frames:
        raise InputError("no per-head table to show")
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on=["layer", "head"], how="outer")
    return out.sort_values(["layer", "head"]).reset_index(drop=True)


def read_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The merged per-head scores of a run folder and its manifest.

    Raises:
        InputError: the folder does not exist or holds no table written by ``interp scan``.
    """
    stats, tables, manifest = RunFolder(run_dir).scores()
    return merge_scores(stats, tables), manifest


def read_results(run_dir: str | Path) -> dict[str, DetectorResult]:
    """Every detector result of a run folder with its extra tables (hidden sinks, key scores,
    ...), by name; a table that cannot be read is left out (``RunFolder.load_detector``)."""
    folder = RunFolder(run_dir)
    names = folder.manifest().get("detectors", {})
    loaded = {name: folder.load_detector(name) for name in names}
    return {name: r for name, r in loaded.items() if r is not None}


def compute_scores(
    model: TransformerBridge,
    step: Callable[[str, float], None] | None = None,
    keep: dict[str, DetectorResult] | None = None,
) -> pd.DataFrame:
    """Head statistics and the fast detectors of ``model``, in memory (no run folder).

    ``step(stage, fraction)`` is called before each stage (for a progress bar). A detector that
    cannot run on this model (e.g. its default inputs are longer than a toy model's context) is
    skipped; ``result.attrs["skipped"]`` maps its name to the reason. ``keep``: a dict that
    receives every detector's full result (thresholds, labels, extra tables).
    """
    step = step or (lambda stage, fraction: None)
    names = detector_names(causal=is_causal(model), dashboard=True)
    skipped: dict[str, str] = {}
    step("head statistics", 0.0)
    try:
        prompts = load_prompts(model_prompts_file(model))  # e.g. written by interp train-toy
        stats = head_stats_table(model, prompts, progress=False)
    except InterpError as e:
        stats, skipped["head statistics"] = None, str(e)
    results: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(names):
        step(f"detector {name}", (i + 1) / (len(names) + 1))
        try:  # as the scan resolves it: a model folder's own prompts feed its text detectors
            spec = detector_spec(name, model=model)
            result: DetectorResult = spec.detector.run(model, spec.config)
        except InterpError as e:
            skipped[name] = str(e)
            continue
        results[name] = result.table
        if keep is not None:
            keep[name] = result
    step("done", 1.0)
    scores = merge_scores(stats, results)
    scores.attrs["skipped"] = skipped
    return scores


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The numeric score columns (everything but layer and head), detectors first."""
    cols = [c for c in scores.columns if c not in ("layer", "head")]
    order = {name: i for i, name in enumerate(PREFERRED)}
    return sorted(cols, key=lambda c: (c in SCORES, ":" in c, order.get(c, len(order)), c))
