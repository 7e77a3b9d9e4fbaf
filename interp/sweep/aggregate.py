"""Aggregating a sweep across prompts: per-head mean and spread, per-length curves, a report.

Written under OUT:
- ``summary/<detector>.parquet``: one row per (model, layer, head): ``<col>_mean``, ``<col>_std``,
  ``n_prompts`` for every measured column;
- ``summary/by_length.parquet``: mean over heads and prompts per (model, detector, column,
  prompt set, length) with the spread over heads (``std_heads``);
- ``runs/<model>/``: a run folder the dashboard reads (``interp dashboard --run ...``):
  ``manifest.json``, ``head_stats.parquet``, ``detectors/<name>_on_prompts.parquet`` (score =
  the mean over prompts of the detector's per-prompt scoring on the prompts themselves; named
  apart from the scan's ``<name>`` tables, which score the detector's own inputs);
- ``plots/<model>_heads.png`` (mean per head), ``plots/<model>_spread.png`` (std over prompts),
  ``plots/by_length.png``; ``report.md`` ties them together.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from interp.heads.base import DetectorResult  # noqa: E402
from interp.report import heatmap_grid, save_png, write_table  # noqa: E402
from interp.runs.folder import RunFolder  # noqa: E402

KEYS = ("model", "prompt_set", "length", "prompt", "layer", "head")
ON_PROMPTS = "_on_prompts"  # suffix of a sweep's per-prompt detector tables in its run folders


def _value_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in KEYS and pd.api.types.is_numeric_dtype(df[c])]


def per_head(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, df in tables.items():
        cols = _value_columns(df)
        g = df.groupby(["model", "layer", "head"])[cols]
        agg = g.agg(["mean", "std"])
        agg.columns = [f"{c}_{s}" for c, s in agg.columns]
        agg["n_prompts"] = g.size()
        out[name] = agg.reset_index()
    return out


def by_length(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for name, df in tables.items():
        for col in _value_columns(df):
            per = df.groupby(["model", "prompt_set", "length", "layer", "head"])[col].mean()
            g = per.groupby(["model", "prompt_set", "length"])
            frames.append(
                pd.DataFrame({"mean": g.mean(), "std_heads": g.std()}).reset_index()
                .assign(detector=name, column=col)
            )  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def dashboard_runs(out: Path, heads: dict[str, pd.DataFrame], names: dict[str, str]) -> list[Path]:
    """One dashboard-readable run folder per model (tables of per-head means)."""
    folders = []
    labels = sorted({m for df in heads.values() for m in df["model"].unique()})
    for label in labels:
        folder = RunFolder(Path(out) / "runs" / label)
        detectors = {}
        for name, df in heads.items():
            d = df[df["model"] == label].drop(columns=["model"])
            if name == "head_stats":
                d = d.rename(columns={c: c.removesuffix("_mean") for c in d if c.endswith("_mean")})
                folder.write_head_stats(d)
                continue
            table = name + ON_PROMPTS
            source = "interp sweep: mean over prompts of the per-prompt score on the prompts"
            folder.save_detector(
                DetectorResult(table, d.rename(columns={"score_mean": "score"}), {"source": source})
            )
            detectors[table] = {"source": source, "detector": name}
        folder.write_manifest(
            {"model": {"name": names.get(label, label)}, "detectors": detectors,
             "source": "interp sweep"}
        )  # fmt: skip
        folders.append(folder.root)
    return folders


def plot_lengths(curves: pd.DataFrame, path: Path, length_sets: set[str]) -> Path | None:
    """One panel per measure (columns) and model (rows): mean over heads and prompts vs context
    length for the prompt sets whose length is a sweep setting (haystack windows), with the
    spread over heads as error bars."""
    c = curves[curves["prompt_set"].isin(length_sets)]
    if c.empty or c["length"].nunique() < 2:
        return None

    def measure(det: str, col: str) -> str:
        return col if det == "head_stats" else (det if col == "score" else f"{det}:{col}")

    c = c.assign(measure=[measure(d, k) for d, k in zip(c["detector"], c["column"], strict=True)])
    measures = sorted(c["measure"].unique())
    models = sorted(c["model"].unique())
    fig, axes = plt.subplots(len(models), len(measures), squeeze=False,
                             figsize=(2.6 * len(measures), 2.4 * len(models)))  # fmt: skip
    for i, model in enumerate(models):
        for j, measure in enumerate(measures):
            ax = axes[i][j]
            sub = c[(c["model"] == model) & (c["measure"] == measure)]
            for pset, g in sub.groupby("prompt_set"):
                g = g.sort_values("length")
                ax.errorbar(g["length"], g["mean"], yerr=g["std_heads"], marker="o", capsize=2,
                            label=pset)  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_title(f"{model}: {measure}" if j == 0 else measure, fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(models) - 1:
                ax.set_xlabel("context length", fontsize=7)
    fig.suptitle("mean over heads and prompts vs context length (bars: std over heads)",
                 fontsize=9)  # fmt: skip
    return save_png(fig, path)


def aggregate(
    out: Path, tables: dict[str, pd.DataFrame], names: dict[str, str], length_sets: set[str]
) -> dict:
    """Write summaries, dashboard run folders and plots; returns what was written."""
    out = Path(out)
    heads = per_head(tables)
    for name, df in heads.items():
        write_table(df, out / "summary" / f"{name}.parquet")
    curves = by_length(tables)
    if not curves.empty:
        write_table(curves, out / "summary" / "by_length.parquet")
    runs = dashboard_runs(out, heads, names)
    plots = []
    for label in sorted({m for df in heads.values() for m in df["model"].unique()}):
        merged: pd.DataFrame | None = None
        for name, df in heads.items():
            stats = name == "head_stats"
            cols = {
                c: (c.removesuffix("_mean") if stats else name)
                for c in df
                if c.endswith("_mean") and (stats or c == "score_mean")
            }
            spread = {c.replace("_mean", "_std"): f"{v} (std)" for c, v in cols.items()}
            d = df[df["model"] == label][["layer", "head", *cols, *spread]]
            d = d.rename(columns={**cols, **spread})
            merged = d if merged is None else merged.merge(d, on=["layer", "head"])
        assert merged is not None  # heads holds at least one table (checked above)
        means = [c for c in merged.columns if c not in ("layer", "head") and "(std)" not in c]
        stds = [c for c in merged.columns if "(std)" in c]
        plots.append(heatmap_grid(merged, means, out / "plots" / f"{label}_heads.png",
                                  f"{label}: mean over prompts"))  # fmt: skip
        plots.append(heatmap_grid(merged, stds, out / "plots" / f"{label}_spread.png",
                                  f"{label}: std over prompts"))  # fmt: skip
    length_plot = (
        plot_lengths(curves, out / "plots" / "by_length.png", length_sets) if len(curves) else None
    )
    if length_plot:
        plots.append(length_plot)
    return {"summary": sorted(heads), "runs": [str(r) for r in runs],
            "plots": [str(p) for p in plots]}  # fmt: skip
