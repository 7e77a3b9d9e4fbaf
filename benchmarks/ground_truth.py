"""Every head-finding method scored against models whose circuits are known.

    python benchmarks/ground_truth.py                 # the planted models shipped in circuits/

For each planted model (``circuits.planted``: trained here, ground truth established causally
and stored in ``ground_truth.json``: circuits by ablation, sink heads by hiding the first token
from each head, ``circuits.planted_sinks``), each method gives every head a score; against the
ground-truth heads of the role the method claims to find it reports ROC AUC (of the score),
precision and recall (of the heads the method labels: a detector's own threshold, or the top
|ground truth| heads for the circuit methods):

- detectors (defaults unless named): induction (against the layer-1 role: induction, or
  retrieval in the recall model), previous_token on text windows (the default: refused, the
  toy vocabulary has no English words), on repeated random tokens and on the model's own
  prompts, duplicate_token (no such role is planted: every head it labels is reported, a
  finding), the anchor detector's global heads on the model's prompts (against the heads that
  read the farthest keys: the layer-1 role, or the sink heads), and in the sink models the
  sink detector on text samples (refused) and on the model's prompts against the sink heads;
- the retrieval-head copy-paste rule (Wu et al.; ``circuits.planted.copy_paste_scores``) on
  needle tests built from the task (induction: the segment's first copy is the needle; recall:
  the queried key's value), label score > 0.1, against the layer-1 role;
- exhaustive activation patching of ``hook_z`` (|normalised effect|) and the discrete-code SAE
  node score (official setup: 10 training examples) on clean / corrupted task pairs
  (``circuits.planted.task_pairs``), both against the whole circuit, and the SAE edge score of
  every head pair against the circuit's edges (a layer-0 role head -> a layer-1 role head);
- the same SAE on each head's write at the last position (not the official average): how
  much averaging dilutes a contrast confined to one position;
- path patching: each layer-0 head as sender, the ground-truth layer-1 heads' keys as
  receivers (K-composition), against the previous-token role among layer-0 heads;
- causal validation of the induction detector, and of the sink detector in the sink model
  (``interp.runs.validate``): uniform-attention masking of its top-k heads vs random k-sets
  (k = the size of the planted role), on the detector's own metric (induction loss; the loss
  on the model's prompts).

The sink models have no task pairs and no copying circuit: only the detector rows and the
sink detector's validation apply.

Evidence (``interp.evidence``, docs/methods.md "Evidence"): every AUC stands beside the same
trivial baselines on the same heads: the layer index (both directions), each head's mean write
norm on the model's prompts and, where the role works in a task, on that task's clean prompts
(what a head writes where it works), the write change between clean and corrupted task prompts
(circuit models; in v2 also beside the roles that work in a task) and the first-token sink
score s_0; with the exact p-value of a random ranking for the class sizes, a stratified
bootstrap 95 % interval over heads, and the claims rule's verdict ("identifies" only where the
lower bound is above the best baseline's AUC and p < 0.05). The SAE scores are trained from
``--seeds`` seeds (10 by default): mean, std, range and every seed's AUC.

Prints a table; writes ``benchmarks/results/ground_truth.json`` and ``ground_truth.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from ground_truth_common import (
    N_SEEDS,
    UNKNOWN,
    heads_str,
    model_baselines,
    refused_row,
    sae_seed_scores,
    score_against,
    top,
    with_evidence,
)

RESULTS = Path(__file__).parent / "results"


def benchmark_model(name: str, sae_epochs: int, seeds: int, progress: bool) -> dict[str, Any]:
    from circuits.planted import (
        PLANTED,
        ROLES,
        copy_paste_scores,
        labels,
        load_ground_truth,
        shipped_folder,
        task_pairs,
    )
    from circuits.planted_sinks import SINK_TASKS
    from interp.ablation.patching import activation_patching, path_patching
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
    role_truth = {r: labels(truth, r, n_layers, n_heads) for r in truth["roles"]}
    circuit = labels(truth, None, n_layers, n_heads)
    sink_model = truth["task"] in SINK_TASKS
    task = None if sink_model else task_pairs(model, cfg)
    base = model_baselines(model, task)
    rows: list[dict[str, Any]] = []

    def add(method, role, scores, predicted, secs, subset=None, truth_mask=None):
        target = circuit if role == "circuit" else role_truth.get(role, np.zeros_like(circuit))
        target = target if truth_mask is None else truth_mask
        idx = np.arange(len(target)) if subset is None else subset
        runs = np.atleast_2d(scores)[:, idx]
        first = runs[0]
        evidence = {} if role == UNKNOWN else with_evidence(
            runs if len(runs) > 1 else first, target[idx], {k: v[idx] for k, v in base.items()}
        )  # fmt: skip
        rows.append(
            {
                "model": name,
                "method": method,
                "against": role,
                **evidence,
                **score_against(first, predicted, target[idx]),
                "labelled": heads_str(np.isin(np.arange(len(target)), idx[predicted]), n_heads),
                "seconds": round(secs, 2),
                "scores": [round(float(x), 6) for x in np.atleast_2d(scores).mean(0)[idx]],
            }
        )

    # circuit models: a role not planted has no heads, every head labelled is a finding; the
    # sink models establish only the sink heads (their backcopy heads are not labelled)
    none = UNKNOWN if sink_model else "none planted"
    copy_role = ROLES[name].get(1, none)  # the layer-1 role: induction or retrieval
    prev_role = "previous_token" if "previous_token" in role_truth else none
    far_role = "sink" if sink_model else copy_role  # heads that read the farthest keys
    prompts = {"inputs": "model_prompts"}
    detector_runs = [
        ("induction", "induction", {}, copy_role),
        ("previous_token (text windows)", "previous_token", {}, prev_role),
        ("previous_token (repeated tokens)", "previous_token", {"inputs": "repeated_tokens"},
         prev_role),
        ("previous_token (model prompts)", "previous_token", prompts, prev_role),
        ("duplicate_token", "duplicate_token", {}, none),
        ("anchor global heads (model prompts)", "anchor", {**prompts, "n_windows": 16},
         far_role),
    ]  # fmt: skip
    if sink_model:  # sinks are established in the sink models only
        detector_runs += [
            ("sink (text samples)", "sink", {}, "sink"),
            ("sink (model prompts)", "sink", prompts, "sink"),
        ]
    induction_result = sink_result = None
    for method, detector, options, role in detector_runs:
        t0 = time.perf_counter()
        try:
            result = get_detector(detector).run(model, **options)
        except InterpError as e:  # e.g. English text inputs on a toy vocabulary: a finding
            rows.append(refused_row(name, method, role, e))
            continue
        t = result.table
        add(method, role, t.score.to_numpy(), t.label.to_numpy(), time.perf_counter() - t0)
        if detector == "induction":
            induction_result = result
        if method == "sink (model prompts)":
            sink_result = result
    if sink_model:  # no task pairs, no copying circuit: the sink rows are the benchmark
        k = int(role_truth["sink"].sum())
        validation = None  # the negative has no sink heads to size k by
        if k and sink_result is not None:
            validation = _validation(validate(model, sink_result, k=k, n_draws=N_SEEDS,
                                              progress=progress))  # fmt: skip
        return _result(name, folder, truth, rows, validation)
    t0 = time.perf_counter()  # the copy-paste rule on the planted task's own needle tests
    copy = copy_paste_scores(model, cfg).reshape(-1)
    add("retrieval copy-paste rule (task needles)", copy_role, copy, copy > RETRIEVAL_THRESHOLD,
        time.perf_counter() - t0)  # fmt: skip
    k = int(circuit.sum())
    t0 = time.perf_counter()
    effects = activation_patching(model, task.clean, task.corrupted, task.logit_diff, hook="z",
                                  progress=progress).reshape(-1).numpy()  # fmt: skip
    patch = np.abs(np.nan_to_num(effects))
    add("activation patching |effect|", "circuit", patch, top(patch, k), time.perf_counter() - t0)
    t0 = time.perf_counter()
    sae = sae_seed_scores(model, task, sae_epochs, seeds)
    secs = time.perf_counter() - t0
    nodes = sae["nodes"]
    add("discrete-code SAE node score", "circuit", nodes, top(nodes.mean(0), k), secs)
    last = sae["last"]
    add("SAE node score, last-position writes", "circuit", last, top(last.mean(0), k), secs)
    first, second = (role_truth[ROLES[name][la]] for la in (0, 1))
    rows.append(edge_row(name, sae["edges"], first, second, n_heads, base, secs))
    receivers = [tuple(h) for h in truth["circuit"] if h[0] == 1]
    if receivers and "previous_token" in role_truth:
        t0 = time.perf_counter()
        path = np.array(
            [
                path_patching(
                    model, task.clean, task.corrupted, task.logit_diff, (0, h), receivers,
                    receiver_input="k",
                )
                for h in range(n_heads)
            ]
        )  # fmt: skip
        mag = np.abs(path)
        layer0 = np.arange(n_heads)
        chosen = top(mag, int(role_truth["previous_token"][layer0].sum()))
        full = np.zeros(n_layers * n_heads)
        full[layer0] = mag
        add("path patching L0 -> circuit L1 keys", "previous_token", full, chosen,
            time.perf_counter() - t0, subset=layer0)  # fmt: skip
        rows[-1]["against"] = "previous_token (layer 0 only)"
        rows[-1]["effects"] = path.tolist()
    validation = None
    if induction_result is not None and "induction" in role_truth:
        kk = min(int(role_truth["induction"].sum()), n_layers * n_heads // 2)
        v = validate(model, induction_result, k=kk, n_draws=N_SEEDS, progress=progress)
        validation = _validation(v)
    return _result(name, folder, truth, rows, validation)


def _validation(v) -> dict[str, Any]:
    return {k: v.summary[k] for k in v.summary if not isinstance(v.summary[k], dict)}


def _result(name, folder, truth, rows, validation) -> dict[str, Any]:
    cwd = Path.cwd()
    return {
        "model": name,
        "folder": str(folder.relative_to(cwd) if folder.is_relative_to(cwd) else folder),
        "ground_truth": {k: v for k, v in truth.items() if k != "config"},
        "rows": rows,
        "validation": validation,
    }


def edge_row(name, edges, first, second, n_heads: int, base: dict, secs: float) -> dict:
    """The SAE edge score ([seed, head, head]) of every pair of heads in different layers (a
    layer-0 head i, a layer-1 head j: the only pairs that can compose) against the planted
    circuit's edges: a head of the layer-0 role (``first``) feeding one of the layer-1 role
    (``second``). Baselines: the product of the two heads' baseline scores."""
    i, j = np.triu_indices(len(first), k=1)
    cross = i // n_heads != j // n_heads
    i, j = i[cross], j[cross]
    truth = first[i] & second[j]
    scores = edges[:, i, j]
    chosen = top(scores.mean(0), int(truth.sum()))
    pairs = [
        f"L{a // n_heads}.H{a % n_heads}->L{b // n_heads}.H{b % n_heads}"
        for a, b in zip(i, j, strict=True)
    ]
    pair_base = {f"{k} (product)": v[i] * v[j] for k, v in base.items() if "layer" not in k}
    return {
        "model": name,
        "method": "discrete-code SAE edge score",
        "against": "circuit edges (L0 role -> L1 role)",
        **with_evidence(scores, truth, pair_base),
        **score_against(scores.mean(0), chosen, truth),
        "labelled": ", ".join(p for p, c in zip(pairs, chosen, strict=True) if c) or "none",
        "seconds": round(secs, 2),
    }


def print_table(results: list[dict]) -> None:
    head = (f"{'model':<9} {'method':<38} {'against':<22} {'AUC':>5} {'95% interval':>13} "
            f"{'seeds sd [min,max]':>19} {'p_null':>7}  {'best baseline':<27} verdict")  # fmt: skip
    print(head)
    for res in results:
        for r in res["rows"]:
            if "auc" not in r:
                print(f"{r['model']:<9} {r['method'][:38]:<38} {r['against'][:22]:<22} "
                      f"{'n/a':>5}  {r['labelled'][:80]}")  # fmt: skip
                continue
            lo, hi = r["interval"]
            seeds = (f"{r['auc_std']:.2f} [{r['auc_min']:.2f},{r['auc_max']:.2f}]"
                     if "seeds" in r else "")  # fmt: skip
            best = r["best_baseline"]
            best_s = f"{best} {r['baselines'][best]['auc']:.2f}" if best else ""
            print(f"{r['model']:<9} {r['method'][:38]:<38} {r['against'][:22]:<22} "
                  f"{r['auc']:5.2f} [{lo:4.2f}, {hi:4.2f}] {seeds:>19} {r['p_null']:7.3f}  "
                  f"{best_s:<27} {r['verdict']}")  # fmt: skip
        if res["validation"]:
            v = res["validation"]
            print(
                f"{res['model']:<9} validation of {v['detector']} (top-{v['k']} masked): "
                f"{v['metric']} change {v['top_drop']:.3f} vs {v['n_draws']} random sets "
                f"{v.get('random_drop_mean', float('nan')):.3f}"
                + (f" ({v['control_warning']})" if "control_warning" in v else "")
            )


def run_model(name: str, sae_epochs: int, seeds: int, progress: bool) -> dict[str, Any]:
    """A v2 model (``circuits.planted_mixture``) or a v1 model."""
    from ground_truth_v2 import benchmark_mixture

    from circuits.planted import load_ground_truth, shipped_folder

    if load_ground_truth(shipped_folder(name)).get("version") == 2:
        return benchmark_mixture(name, sae_epochs, seeds, progress)
    return benchmark_model(name, sae_epochs, seeds, progress)


def main() -> None:
    from ground_truth_plot import plot

    from circuits.planted import PLANTED, SHIPPED
    from interp.report import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(PLANTED))
    parser.add_argument("--sae-epochs", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=N_SEEDS)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if (SHIPPED / n / "ground_truth.json").is_file()]
    missing = sorted(set(args.models.split(",")) - set(names))
    results = [run_model(n, args.sae_epochs, args.seeds, args.progress) for n in names]
    RESULTS.mkdir(exist_ok=True)
    # a subset of the models never overwrites the full results
    requested = set(args.models.split(","))
    stem = "ground_truth" if requested == set(PLANTED) else "ground_truth_" + "+".join(names)
    write_json({"models": results, "not_shipped": missing, "seeds": args.seeds},
               RESULTS / f"{stem}.json")  # fmt: skip
    plot(results, RESULTS / f"{stem}.png")
    print_table(results)
    if missing:
        print(f"not shipped (train with `interp train-toy --planted NAME`): {', '.join(missing)}")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
