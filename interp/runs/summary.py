"""Human summary (Markdown) of detector results."""

from __future__ import annotations

from interp.heads.base import DetectorResult


def _top(result: DetectorResult, n: int = 5) -> str:
    t = result.table
    if "group" in t:  # a detector that analyses some layers only (anchor): rank those heads
        t = t[t["group"] != ""]
    t = t.sort_values("score", ascending=False).head(n)
    return ", ".join(f"L{r.layer}.H{r.head} ({r.score:.3f})" for r in t.itertuples())


def detectors_md(results: dict[str, DetectorResult], seconds: dict[str, float]) -> str:
    lines = ["## Head detectors", ""]
    lines += ["| detector | threshold | heads labelled | fraction | best heads | seconds |"]
    lines += ["|---|---|---|---|---|---|"]
    for name, r in results.items():
        t = r.table
        thr = t.threshold.iloc[0]
        lines.append(
            f"| {name} | {thr:.3g} | {int(t.label.sum())} / {len(t)} | {t.label.mean():.1%} "
            f"| {_top(r)} | {seconds.get(name, float('nan')):.1f} |"
        )
    lines.append("")
    from interp.heads.base import REGISTRY

    for name, r in results.items():  # each detector words its own finding (registry)
        line = REGISTRY[name].summary if name in REGISTRY else None
        text = line(r) if line is not None else None
        if text:
            lines.append(f"- {text}")
    return "\n".join(lines) + "\n"
