"""Human summary (Markdown) of detector results."""

from __future__ import annotations

from collections import Counter

from interp.defaults import GROUP_FRACTION, RECALL_THRESHOLD, SINK_THRESHOLD
from interp.heads.base import DetectorResult


def _top(result: DetectorResult, n: int = 5) -> str:
    t = result.table.sort_values("score", ascending=False).head(n)
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
    if "retrieval" in results:
        i = results["retrieval"].inputs
        thr = results["retrieval"].table.threshold.iloc[0]
        lines.append(
            f"- Retrieval heads (score > {thr:.3g}): {i['retrieval_head_fraction']:.1%} of heads; "
            f"{i['zero_score_fraction']:.1%} score exactly 0; {i['n_tests_counted']} of "
            f"{i['n_tests']} needle tests counted (ROUGE-1 recall > {RECALL_THRESHOLD}); lengths "
            f"{i['lengths']}, depths {i['depths']}."
        )
    if "sink" in results:
        r = results["sink"]
        hidden = r.extra.get("hidden_sinks")
        common = Counter(hidden.token).most_common(6) if hidden is not None else []
        tokens = ", ".join(f"{tok!r} ({n})" for tok, n in common)
        thr = r.table.threshold.iloc[0]
        lines.append(
            f"- Attention sinks on {r.inputs.get('n_tokens')}-token text samples: Gu et al.'s "
            f"metric (share of (sample, layer, head) with s_0 > {thr}) "
            f"{r.inputs['sink_metric']:.1%}; heads with mean s_0 > {thr}: "
            f"{r.inputs['sink_head_fraction']:.1%}. Most frequent hidden sinks "
            f"(s_j > {SINK_THRESHOLD}, j >= 1): {tokens or 'none'}."
        )
    if "induction" in results:
        t = results["induction"].table
        lines.append(f"- Induction heads (score > {t.threshold.iloc[0]}): {t.label.mean():.1%}.")
    if "anchor" in results:
        t = results["anchor"].table
        glob = t[t.group == "global"].sort_values("score", ascending=False).head(5)
        heads = ", ".join(f"L{r.layer}.H{r.head} (span {r.score:.1f})" for r in glob.itertuples())
        lines.append(
            f"- Anchor analysis on layers {', '.join(map(str, results['anchor'].inputs['layers']))}"
            f": global heads (top {GROUP_FRACTION:.0%} span) e.g. "
            f"{heads}; preplan/anchor tokens per window are in detectors/anchor.tokens.parquet."
        )
    return "\n".join(lines) + "\n"
