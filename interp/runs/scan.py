"""``interp scan``: per-head attention statistics and every head detector -> run folder.

It writes a whole run folder (``interp.runs.folder.RunFolder`` owns the layout):
``head_stats.parquet`` (one row per (layer, head): mean entropy, first-token mass, sink score of
token 0 (s_0, docs/methods.md section 2), previous-token mass, mean attention distance), every
detector's tables under ``detectors/``, heatmaps, ``summary.md`` and ``manifest.json``.

Each table records a fingerprint of its inputs; a re-run with the same inputs reuses it, and the
retrieval detector keeps each finished needle test under ``cache/retrieval/`` so an interrupted
scan resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.heads import detector_names, get_detector
from interp.heads.base import DetectorResult, DetectorSpec
from interp.inputs.prompts import default_prompts_file, load_prompts, model_prompts_file
from interp.inputs.text import own_inputs
from interp.models.info import is_causal, model_info, model_key
from interp.report import versions
from interp.runs.folder import RunFolder
from interp.runs.summary import detectors_md
from interp.stats.heads import head_stats_table

TABLE_VERSION = 1


def _fingerprint(model_name: str, prompts: list[str]) -> str:
    h = hashlib.sha256(f"{model_name}|v{TABLE_VERSION}|".encode())
    for p in prompts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:16]


def _summary_md(df: pd.DataFrame, info: dict, seconds: float) -> str:
    lines = [
        f"# Head scan of {info['name']}",
        "",
        f"{info['n_layers']} layers x {info['n_heads']} heads ({info['n_kv_heads']} kv heads), "
        f"{df.n_prompts.iloc[0]} prompts, {df.n_tokens.iloc[0]} tokens, {seconds:.1f} s.",
        "",
    ]
    for col, ascending in [
        ("sink_score_0", False),
        ("prev_token_mass", False),
        ("entropy", True),
        ("mean_distance", False),
    ]:
        top = df.sort_values(col, ascending=ascending).head(5)
        heads = ", ".join(f"L{r.layer}.H{r[2]} ({getattr(r, col):.3f})" for r in top.itertuples())
        order = "lowest" if ascending else "highest"
        lines.append(f"- {order} `{col}`: {heads}")
    frac = float((df.sink_score_0 > 0.3).mean())
    lines += [
        "",
        f"Fraction of heads with sink score s_0 > 0.3 on these prompts: {frac:.2%} "
        "(Gu et al.'s model-level metric uses the same threshold on 64-token inputs).",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class ScanResult:
    out: Path
    table: pd.DataFrame
    reused: bool
    seconds: float
    detectors: dict[str, DetectorResult] = field(default_factory=dict)
    detector_seconds: dict[str, float] = field(default_factory=dict)
    detector_reused: dict[str, bool] = field(default_factory=dict)


# every attention detector, in registry order; the causal role scores run when named (slow)
DEFAULT_DETECTORS = tuple(detector_names(interventional=False))


def detector_options(
    name: str,
    grid: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    model: TransformerBridge | None = None,
) -> dict[str, Any]:
    """Options each detector runs with in a scan: the grid, for a detector whose ``Config``
    takes one (the retrieval detector's needle grid), the model folder's own prompts for a
    text detector when ``model`` ships them (``own_inputs``), then ``overrides[name]``
    (``--set``)."""
    detector = get_detector(name)
    fields_ = {f.name for f in fields(detector.Config)}
    options: dict[str, Any] = {"grid_name": grid} if "grid_name" in fields_ else {}
    if model is not None:
        options.update(own_inputs(model, detector))
    options.update((overrides or {}).get(name, {}))
    return options


def detector_spec(
    name: str,
    grid: str = "small",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    model: TransformerBridge | None = None,
) -> DetectorSpec:
    """Detector ``name`` with the options a scan gives it (``detector_options``), checked and
    frozen into its Config once."""
    return DetectorSpec.of(name, **detector_options(name, grid, overrides, model))


def run_detectors(
    model: TransformerBridge,
    out: Path,
    names: Sequence[str],
    *,
    grid: str = "small",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> tuple[dict[str, DetectorResult], dict[str, float], dict[str, bool]]:
    """Run (or reuse) each detector and store its tables under ``out/detectors``; ``options``
    maps a detector name to fields of its ``Config``."""
    folder = RunFolder(out)
    results, seconds, reused = {}, {}, {}
    for name in names:
        spec = detector_spec(name, grid, options, model)
        results[name], reused[name], seconds[name] = folder.run_detector(
            model, spec, progress=progress
        )
        if progress:
            tqdm.write(
                f"detector {name}: {seconds[name]:.1f} s{' (reused)' if reused[name] else ''}"
            )
    return results, seconds, reused


def scan(
    model: TransformerBridge,
    out: Path,
    *,
    prompts_file: Path | None = None,
    batch_size: int = 4,
    detectors: Sequence[str] = DEFAULT_DETECTORS,
    grid: str = "small",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> ScanResult:
    """Compute (or reuse) the statistics and detector tables of ``model``; write the run folder.

    ``detectors``: names from ``interp.heads.REGISTRY`` (default all); ``grid``: the retrieval
    grid, ``small`` (default, minutes on a CPU) or ``large`` (up to 8k tokens); ``options``:
    detector name -> fields of its ``Config`` (e.g. ``{"sink": {"n_tokens": 128}}``);
    ``prompts_file`` (the head statistics' prompts): default the model folder's prompts.txt
    where it ships one (``interp train-toy`` writes the task's sequences), else the bundled set.
    """
    out = Path(out)
    folder = RunFolder(out)
    with folder.lock():
        return _scan(model, folder, prompts_file, batch_size, detectors, grid, options, progress)


def _scan(model, folder: RunFolder, prompts_file, batch_size, detectors, grid, options, progress):
    prompts_file = prompts_file or model_prompts_file(model)  # a toy model's own task sequences
    out = folder.root
    prompts = load_prompts(prompts_file)
    info = model_info(model).as_dict()
    fp = _fingerprint(model_key(model), prompts)
    t0 = time.perf_counter()
    df = folder.read_head_stats(fp)
    reused = df is not None
    if df is None:
        df = head_stats_table(model, prompts, batch_size=batch_size, progress=progress)
        folder.write_head_stats(df, {"fingerprint": fp, "model": info["name"]})
    seconds = time.perf_counter() - t0
    folder.write_head_stats_plot(df, f"{info['name']}: per-head attention stats")
    if not is_causal(model):
        skip = [d for d in detectors if d not in detector_names(causal=False)]
        if skip and progress:
            tqdm.write(f"skipping {', '.join(skip)}: defined for causal language models only")
        detectors = [d for d in detectors if d not in skip]
    results, det_seconds, det_reused = run_detectors(
        model, out, detectors, grid=grid, options=options, progress=progress
    )
    if results:
        folder.write_detector_plots(results, f"{info['name']}: detector scores per head")
    summary = _summary_md(df, info, seconds)
    if results:
        summary += "\n" + detectors_md(results, det_seconds)
    folder.write_summary(summary)
    paths = folder.table_paths(results)
    folder.write_manifest(
        {
            "model": {
                **info,
                "content_key": model_key(model),
                "content_key_of": "SHA-256 of every weight, config and tokenizer file the "
                "model was loaded from (interp.models.loader.content_key)",
            },
            "inputs": {
                "prompts_file": str(prompts_file or default_prompts_file()),
                "n_prompts": len(prompts),
                "fingerprint": fp,
                "batch_size": batch_size,
            },
            "tables": paths["tables"],
            "detectors": {
                n: {
                    "config": detector_spec(n, grid, options, model).as_dict(),
                    "inputs": r.inputs,
                    "extra_tables": paths["extra_tables"][n],
                    "seconds": round(det_seconds[n], 3),
                    "reused": det_reused[n],
                }
                for n, r in results.items()
            },
            "versions": versions(),
            "seconds": round(seconds, 3),
            "reused": reused,
        }
    )
    return ScanResult(out, df, reused, seconds, results, det_seconds, det_reused)
