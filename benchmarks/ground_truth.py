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

Prints a table; writes ``benchmarks/results/ground_truth.json`` and ``ground_truth.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
UNKNOWN = "not established"  # no ground truth for this role: heads labelled, nothing scored


def score_against(scores: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> dict:
    """ROC AUC of ``scores``; precision / recall of the ``predicted`` heads vs ``truth``."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    both = 0 < truth.sum() < len(truth)
    return {
        "roc_auc": float(roc_auc_score(truth, scores)) if both else float("nan"),
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "n_truth": int(truth.sum()),
        "n_predicted": int(predicted.sum()),
        "false_positives": int((predicted & ~truth).sum()),
    }


def top(scores: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(scores), dtype=bool)
    out[np.argsort(-scores, kind="stable")[:k]] = True
    return out


def heads_str(mask: np.ndarray, n_heads: int) -> str:
    return ", ".join(f"L{i // n_heads}.H{i % n_heads}" for i in np.flatnonzero(mask)) or "none"


def sae_last_position_scores(model, task, sae_epochs: int, seed: int = 0) -> np.ndarray:
    """Node scores of the discrete-code SAE (official recipe: 10 training examples) on each
    head's write at the LAST position instead of the official position average: shows how much
    a contrast confined to one position is diluted by averaging."""
    import torch

    from circuits.discovery import sae_training_examples
    from interp.ablation.heads import head_writes
    from interp.sae import node_scores, train_sae

    def last(batch):
        weights = torch.zeros(batch.tokens.shape)
        for i, n in enumerate(batch.lengths):
            weights[i, n - 1] = 1.0
        return head_writes(model, batch, weights)

    x = torch.cat([last(task.clean), last(task.corrupted)])
    positive = np.r_[np.ones(len(task.answer), bool), np.zeros(len(task.answer), bool)]
    train = sae_training_examples(len(x), 10, seed)
    sae, _ = train_sae(x[train].reshape(-1, x.shape[-1]), epochs=sae_epochs, seed=seed,
                       progress=False)  # fmt: skip
    return node_scores(sae.codes(x).numpy(), positive)


def benchmark_model(name: str, sae_epochs: int, progress: bool) -> dict[str, Any]:
    from circuits.discovery import discover
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
    from interp.ablation.patching import path_patching
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
    rows: list[dict[str, Any]] = []

    def add(method: str, role: str, scores: np.ndarray, predicted: np.ndarray, secs: float):
        target = circuit if role == "circuit" else role_truth.get(role, np.zeros_like(circuit))
        nan = float("nan")
        rows.append(
            {
                "model": name,
                "method": method,
                "against": role,
                **score_against(scores, predicted, target),
                **({"roc_auc": nan, "precision": nan, "recall": nan} if role == UNKNOWN else {}),
                "labelled": heads_str(predicted, n_heads),
                "seconds": round(secs, 2),
                "scores": [round(float(x), 6) for x in scores],
            }
        )

    sink_model = truth["task"] in SINK_TASKS
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
            validation = _validation(validate(model, sink_result, k=k, n_draws=10,
                                              progress=progress))  # fmt: skip
        return _result(name, folder, truth, rows, None, validation)
    t0 = time.perf_counter()  # the copy-paste rule on the planted task's own needle tests
    copy = copy_paste_scores(model, cfg).reshape(-1)
    add(
        "retrieval copy-paste rule (task needles)",
        copy_role,
        copy,
        copy > RETRIEVAL_THRESHOLD,
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    task = task_pairs(model, cfg)
    found = discover(model, task, sae_epochs=sae_epochs, progress=progress)
    secs = time.perf_counter() - t0
    k = int(circuit.sum())
    patch = np.abs(np.nan_to_num(found.table.patch_effect.to_numpy()))
    sae = found.table.sae_node_score.to_numpy()
    add("activation patching |effect|", "circuit", patch, top(patch, k), secs)
    add("discrete-code SAE node score", "circuit", sae, top(sae, k), secs)
    first, second = (role_truth[ROLES[name][la]] for la in (0, 1))
    rows.append(edge_row(name, found.edges, first, second, n_heads, secs))
    t0 = time.perf_counter()
    last = sae_last_position_scores(model, task, sae_epochs)
    add("SAE node score, last-position writes", "circuit", last, top(last, k),
        time.perf_counter() - t0)  # fmt: skip
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
        layer0 = role_truth["previous_token"][:n_heads]
        mag = np.abs(path)
        chosen = top(mag, int(layer0.sum()))
        rows.append(
            {
                "model": name,
                "method": "path patching L0 -> circuit L1 keys",
                "against": "previous_token (layer 0 only)",
                **score_against(mag, chosen, layer0),
                "labelled": ", ".join(f"L0.H{h}" for h in np.flatnonzero(chosen)),
                "seconds": round(time.perf_counter() - t0, 2),
                "effects": path.tolist(),
            }
        )
    validation = None
    if induction_result is not None and "induction" in role_truth:
        kk = min(int(role_truth["induction"].sum()), n_layers * n_heads // 2)
        v = validate(model, induction_result, k=kk, n_draws=5, progress=progress)
        validation = _validation(v)
    return _result(name, folder, truth, rows, found.summary, validation)


def _validation(v) -> dict[str, Any]:
    return {k: v.summary[k] for k in v.summary if not isinstance(v.summary[k], dict)}


def _result(name, folder, truth, rows, discovery, validation) -> dict[str, Any]:
    cwd = Path.cwd()
    return {
        "model": name,
        "folder": str(folder.relative_to(cwd) if folder.is_relative_to(cwd) else folder),
        "ground_truth": {k: v for k, v in truth.items() if k != "config"},
        "discovery": discovery,
        "rows": rows,
        "validation": validation,
    }


def refused_row(name: str, method: str, role: str, error: Exception) -> dict[str, Any]:
    nan = float("nan")
    return {
        "model": name,
        "method": method,
        "against": role,
        "roc_auc": nan,
        "precision": nan,
        "recall": nan,
        "labelled": f"refused: {error}",
        "seconds": 0.0,
    }


def edge_row(
    name: str, edges: np.ndarray, first: np.ndarray, second: np.ndarray, n_heads: int, secs: float
) -> dict:
    """The SAE edge score of every pair of heads in different layers (a layer-0 head i, a
    layer-1 head j: the only pairs that can compose) against the planted circuit's edges: a
    head of the layer-0 role (``first``) feeding one of the layer-1 role (``second``)."""
    i, j = np.triu_indices(len(first), k=1)
    cross = i // n_heads != j // n_heads
    i, j = i[cross], j[cross]
    truth = first[i] & second[j]
    scores = edges[i, j]
    chosen = top(scores, int(truth.sum()))
    pairs = [
        f"L{a // n_heads}.H{a % n_heads}->L{b // n_heads}.H{b % n_heads}"
        for a, b in zip(i, j, strict=True)
    ]
    return {
        "model": name,
        "method": "discrete-code SAE edge score",
        "against": "circuit edges (L0 role -> L1 role)",
        **score_against(scores, chosen, truth),
        "labelled": ", ".join(p for p, c in zip(pairs, chosen, strict=True) if c) or "none",
        "seconds": round(secs, 2),
    }


def plot(results: list[dict], path: Path) -> None:
    """Per model: the ground truth (left) and every method's ROC AUC (right); for the sink
    models the right panel plots, per head, the sink detector's score against the causal need."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(4, len(r["rows"])) for r in results]
    fig, axes = plt.subplots(
        len(results), 2, figsize=(12, 0.42 * sum(heights) + 1.0), squeeze=False,
        gridspec_kw={"width_ratios": [1, 2.4], "height_ratios": heights},
    )  # fmt: skip
    for row, res in zip(axes, results, strict=True):
        truth = res["ground_truth"]
        _truth_panel(row[0], fig, res["model"], truth)
        if "first_key_share" in truth:
            _sink_panel(row[1], res, truth)
        else:
            _auc_panel(row[1], res["rows"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _truth_panel(ax, fig, model: str, truth: dict) -> None:
    import matplotlib.pyplot as plt

    if "recovery" in truth:
        values, kind = np.array(truth["recovery"]), "recovery alone"
    else:
        values = np.array(truth["first_key_share"])
        kind = f"share of the first-key cost\n(all heads: {truth['first_key_cost_all']:.3f} nats)"
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    for la, h in truth["circuit"]:
        ax.add_patch(plt.Rectangle((h - 0.5, la - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{model}: {kind}\n(red: ground truth)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)


def _auc_panel(ax, rows: list[dict]) -> None:
    names = [f"{r['method']} vs {r['against']}" for r in rows]
    auc = [r["roc_auc"] for r in rows]
    ax.barh(names, np.nan_to_num(auc, nan=0.0), color="tab:blue")
    for i, r in enumerate(rows):
        text = "n/a" if np.isnan(r["roc_auc"]) else f"{r['roc_auc']:.2f}"
        p, rc = r["precision"], r["recall"]
        label = "refused" if r["labelled"].startswith("refused") else f"P {p:.2f}  R {rc:.2f}"
        ax.text(0.01, i, f"AUC {text}  {label}", va="center", color="black", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})  # fmt: skip
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("ROC AUC against the ground truth")


def _sink_panel(ax, res: dict, truth: dict) -> None:
    """Per head: the sink detector's score (mean s_0 on the model's prompts) against the share
    of the first-key cost when it alone loses the first key; dashed: the detector's threshold."""
    from interp.defaults import SINK_HEAD_THRESHOLD

    (row,) = [r for r in res["rows"] if r["method"] == "sink (model prompts)"]
    share = np.array(truth["first_key_share"]).reshape(-1)
    score = np.array(row["scores"])
    n_heads = len(truth["first_key_share"][0])
    sink = np.zeros(len(share), dtype=bool)
    for la, h in truth["circuit"]:
        sink[la * n_heads + h] = True
    ax.scatter(score[~sink], share[~sink], color="tab:blue", label="not a sink (ground truth)")
    ax.scatter(score[sink], share[sink], color="tab:red", label="sink head (ground truth)")
    for i, (x, y) in enumerate(zip(score, share, strict=True)):
        ax.annotate(f"L{i // n_heads}.H{i % n_heads}", (x, y), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.axvline(SINK_HEAD_THRESHOLD, color="gray", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1)
    ax.set_xlabel("sink detector score: mean s_0 on the model's prompts (label > 0.3, dashed)")
    ax.set_ylabel("first key hidden from this head:\nshare of the cost of all", fontsize=8)
    auc = "n/a" if np.isnan(row["roc_auc"]) else f"{row['roc_auc']:.2f}"
    ax.set_title(f"{res['model']}: attention on the first token vs needing it (AUC {auc})",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7, loc="upper left")


def main() -> None:
    from circuits.planted import PLANTED, SHIPPED
    from interp.report import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(PLANTED))
    parser.add_argument("--sae-epochs", type=int, default=500)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if (SHIPPED / n / "ground_truth.json").is_file()]
    missing = sorted(set(args.models.split(",")) - set(names))
    results = [benchmark_model(n, args.sae_epochs, args.progress) for n in names]
    RESULTS.mkdir(exist_ok=True)
    # a subset of the models never overwrites the full results
    stem = "ground_truth" if set(names) == set(PLANTED) else "ground_truth_" + "+".join(names)
    write_json({"models": results, "not_shipped": missing}, RESULTS / f"{stem}.json")
    plot(results, RESULTS / f"{stem}.png")
    head = f"{'model':<10} {'method':<41} {'against':<30} {'AUC':>5} {'P':>5} {'R':>5}  labelled"
    print(head)
    for res in results:
        for r in res["rows"]:
            print(
                f"{r['model']:<10} {r['method']:<41} {r['against']:<30} {r['roc_auc']:5.2f} "
                f"{r['precision']:5.2f} {r['recall']:5.2f}  {r['labelled'][:70]}"
            )
        if res["validation"]:
            v = res["validation"]
            print(
                f"{res['model']:<10} validation of {v['detector']} (top-{v['k']} masked): "
                f"{v['metric']} drop {v['top_drop']:.3f} vs random "
                f"{v.get('random_drop_mean', float('nan')):.3f}"
                + (f" ({v['control_warning']})" if "control_warning" in v else "")
            )
    if missing:
        print(f"not shipped (train with `interp train-toy --planted NAME`): {', '.join(missing)}")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
