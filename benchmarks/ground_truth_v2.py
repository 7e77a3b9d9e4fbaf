"""The planted v2 models (``circuits.planted_mixture``: 4 layers x 8 heads, four mechanisms in
one model) in the ground-truth benchmark: every method against every role it claims, beside the
trivial baselines (``benchmarks/ground_truth.py`` prints and stores the rows)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ground_truth_common import (
    N_SEEDS,
    UNKNOWN,
    attention_sae_sets,
    heads_str,
    model_baselines,
    refused_row,
    sae_seed_scores,
    score_against,
    top,
    with_evidence,
)

CIRCUIT_TASKS = ("induction", "recall", "delay_sum")
# the sub-tasks each role works in: its write norm on their prompts is a baseline beside it
ROLE_TASKS = {"induction": ("induction",), "retrieval": ("recall",),
              "previous_token": ("induction", "recall")}  # fmt: skip


def benchmark_mixture(name: str, sae_epochs: int, seeds: int, progress: bool) -> dict[str, Any]:
    from circuits import planted_mixture as pm
    from circuits.planted import PLANTED, copy_paste_scores, load_ground_truth, shipped_folder
    from interp.ablation.patching import activation_patching
    from interp.defaults import RETRIEVAL_THRESHOLD
    from interp.errors import InterpError
    from interp.heads import get_detector
    from interp.models import load_model
    from interp.runs.validate import validate

    folder = shipped_folder(name)
    model = load_model(str(folder))
    truth = load_ground_truth(folder)
    cfg = PLANTED[name]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    n = n_layers * n_heads
    role_truth = {}
    for role, hs in truth["roles"].items():
        mask = np.zeros(n, dtype=bool)
        for la, h in hs:
            mask[la * n_heads + h] = True
        role_truth[role] = mask
    base = model_baselines(model)
    rows: list[dict[str, Any]] = []

    def add(method, role, scores, predicted, secs, extra_base=None):
        target = role_truth.get(role, np.zeros(n, dtype=bool))
        runs = np.atleast_2d(scores)
        baselines = {**base, **(extra_base or {})}
        evidence = {} if role in (UNKNOWN, "none planted") else with_evidence(
            runs if len(runs) > 1 else runs[0], target, baselines
        )  # fmt: skip
        rows.append({"model": name, "method": method, "against": role, **evidence,
                     **score_against(runs[0], predicted, target),
                     "labelled": heads_str(predicted, n_heads), "seconds": round(secs, 2),
                     "scores": [round(float(x), 6) for x in runs.mean(0)]})  # fmt: skip

    prompts = {"inputs": "model_prompts"}
    detector_runs = [
        ("induction", "induction", {}, "induction"),
        ("previous_token (repeated tokens)", "previous_token", {"inputs": "repeated_tokens"},
         "previous_token"),
        ("previous_token (model prompts)", "previous_token", prompts, "previous_token"),
        ("duplicate_token", "duplicate_token", {}, "none planted"),
        ("anchor global heads (model prompts)", "anchor", {**prompts, "n_windows": 16},
         "retrieval"),
        ("sink (model prompts)", "sink", prompts, "sink"),
        ("sink_need, attribution estimate (model prompts)", "sink_need",
         {**prompts, "keys": "first"}, "sink"),
        ("anchor_effect, attribution estimate (model prompts)", "anchor_effect",
         {**prompts, "n_tokens": 64, "near": 4}, "retrieval"),
    ]  # fmt: skip
    # the write norm on each sub-task's own clean prompts and the write change between its
    # clean and corrupted prompts, beside the roles that work there
    task_base = {t: model_baselines(model, pm.task_pairs(model, t, seed=cfg.seed))
                 for t in CIRCUIT_TASKS}  # fmt: skip
    role_base = {
        role: {
            name.replace("task", t) if "task" in name else f"{name} ({t})": v
            for t in ts
            for name, v in task_base[t].items()
            if name in ("write norm (task prompts)", "write change")
        }
        for role, ts in ROLE_TASKS.items()
    }
    sink_result = None
    for method, detector, options, role in detector_runs:
        t0 = time.perf_counter()
        try:
            result = get_detector(detector).run(model, **options)
        except InterpError as e:
            rows.append(refused_row(name, method, role, e))
            continue
        t = result.table.sort_values(["layer", "head"])
        add(method, role, t.score.to_numpy(), t.label.to_numpy(), time.perf_counter() - t0,
            role_base.get(role))  # fmt: skip
        if detector == "sink":
            sink_result = result
        if "exact" in t.columns and t.exact.notna().all():  # every head checked exactly
            exact, label = t.exact.to_numpy(), (t.exact > t.threshold).to_numpy()
            add(method.replace("attribution estimate", "exact, every head"), role, exact,
                label, time.perf_counter() - t0, role_base.get(role))  # fmt: skip
    for task, role in (("induction", "induction"), ("recall", "retrieval")):
        t0 = time.perf_counter()
        tests = pm.copy_tests(task, 64, cfg.seed)
        copy = copy_paste_scores(model, cfg, tests=tests).reshape(-1)
        add(f"retrieval copy-paste rule ({task} needles)", role, copy,
            copy > RETRIEVAL_THRESHOLD, time.perf_counter() - t0, role_base[role])  # fmt: skip
    for task in CIRCUIT_TASKS:
        role = f"{task} circuit"
        k = int(role_truth[role].sum())
        pairs = pm.task_pairs(model, task, seed=cfg.seed)
        change = {
            "write change": task_base[task]["write change"],
            f"write norm ({task} prompts)": task_base[task]["write norm (task prompts)"],
        }
        t0 = time.perf_counter()
        effects = activation_patching(model, pairs.clean, pairs.corrupted, pairs.logit_diff,
                                      hook="z", progress=progress).reshape(-1).numpy()  # fmt: skip
        patch = np.abs(np.nan_to_num(effects))
        add(f"activation patching |effect| ({task} pairs)", role, patch, top(patch, k),
            time.perf_counter() - t0, change)  # fmt: skip
        t0 = time.perf_counter()
        sae = sae_seed_scores(model, pairs, sae_epochs, seeds)
        secs = time.perf_counter() - t0
        add(f"discrete-code SAE node score ({task} pairs)", role, sae["nodes"],
            top(sae["nodes"].mean(0), k), secs, change)  # fmt: skip
        add(f"SAE node score, last-position writes ({task} pairs)", role, sae["last"],
            top(sae["last"].mean(0), k), secs, change)  # fmt: skip
    # attention-output SAEs (one set per seed) on the causal role scores' contrasts
    from interp.sae.family_scores import FAMILY_DETECTORS, sae_family_scores

    t0 = time.perf_counter()
    sae_sets = attention_sae_sets(model, seeds)
    train_secs = time.perf_counter() - t0
    for family, role, options in (
        ("sink", "sink", {"inputs": "model_prompts", "keys": "first"}),
        ("anchor", "retrieval", {"inputs": "model_prompts", "n_tokens": 64, "near": 4}),
    ):
        t0 = time.perf_counter()
        scores = np.stack([sae_family_scores(model, s, family, **options).reshape(-1).numpy()
                           for s in sae_sets])  # fmt: skip
        k_role = int(role_truth[role].sum())
        add(f"attention-output SAE, {FAMILY_DETECTORS[family]} contrast (model prompts)", role,
            scores, top(scores.mean(0), k_role), train_secs + time.perf_counter() - t0,
            role_base.get(role))  # fmt: skip
    validation = None
    k = int(role_truth["sink"].sum())
    if sink_result is not None and 1 <= k <= n // 2:
        v = validate(model, sink_result, k=k, n_draws=N_SEEDS, progress=progress)
        validation = {kk: v.summary[kk] for kk in v.summary if not isinstance(v.summary[kk], dict)}
    return {
        "model": name,
        "folder": str(folder),
        "ground_truth": {k: v for k, v in truth.items() if k != "config"},
        "rows": rows,
        "validation": validation,
    }
