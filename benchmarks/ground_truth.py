"""Every head-finding method scored against models whose circuits are known.

    python benchmarks/ground_truth.py                 # the planted models shipped in circuits/

For each planted model (``circuits.planted``: trained here, ground truth established by
ablation and stored in ``ground_truth.json``), each method gives every head a score; against the
ground-truth heads of the role the method claims to find it reports ROC AUC (of the score),
precision and recall (of the heads the method labels: a detector's own threshold, or the top
|ground truth| heads for the circuit methods):

- detectors (defaults unless named): induction (against the layer-1 role: induction, or
  retrieval in the recall model), previous_token on text windows (the default) and on repeated
  random tokens, duplicate_token (no such role is planted: every head it labels is reported, a
  finding);
- the retrieval-head copy-paste rule (Wu et al.; ``circuits.planted.copy_paste_scores``) on
  needle tests built from the task (induction: the segment's first copy is the needle; recall:
  the queried key's value), label score > 0.1, against the layer-1 role;
- exhaustive activation patching of ``hook_z`` (|normalised effect|) and the discrete-code SAE
  node score (official setup: 10 training examples) on clean / corrupted task pairs
  (``circuits.planted.task_pairs``), both against the whole circuit;
- the same SAE on each head's write at the last position (not the official average): how
  much averaging dilutes a contrast confined to one position;
- path patching: each layer-0 head as sender, the ground-truth layer-1 heads' keys as
  receivers (K-composition), against the previous-token role among layer-0 heads;
- causal validation of the induction detector (``interp.heads.validate``): uniform-attention
  masking of its top-k heads vs random k-sets (k = the size of the planted role).

Prints a table; writes ``benchmarks/results/ground_truth.json`` and ``ground_truth.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


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
    from interp.ablation.patching import path_patching
    from interp.defaults import RETRIEVAL_THRESHOLD
    from interp.heads import get_detector
    from interp.heads.validate import validate
    from interp.models import load_model

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
        rows.append(
            {
                "model": name,
                "method": method,
                "against": role,
                **score_against(scores, predicted, target),
                "labelled": heads_str(predicted, n_heads),
                "seconds": round(secs, 2),
            }
        )

    detector_runs = [
        ("induction", "induction", {}),
        ("previous_token (text windows)", "previous_token", {}),
        ("previous_token (repeated tokens)", "previous_token", {"inputs": "repeated_tokens"}),
        ("duplicate_token", "duplicate_token", {}),
    ]
    copy_role = ROLES[name][1]  # the layer-1 role: induction or retrieval
    induction_result = None
    for method, detector, options in detector_runs:
        t0 = time.perf_counter()
        result = get_detector(detector).run(model, **options)
        t = result.table
        role = detector if detector in role_truth or detector == "duplicate_token" else copy_role
        add(method, role, t.score.to_numpy(), t.label.to_numpy(), time.perf_counter() - t0)
        if detector == "induction":
            induction_result = result
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
        validation = {
            k2: v.summary[k2]
            for k2 in v.summary
            if k2 != "metric_inputs" and not isinstance(v.summary[k2], dict)
        }
    return {
        "model": name,
        "folder": str(
            folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
        ),
        "ground_truth": {k2: v2 for k2, v2 in truth.items() if k2 != "config"},
        "discovery": {k2: found.summary[k2] for k2 in found.summary},
        "rows": rows,
        "validation": validation,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results), 2, figsize=(12, 3.2 * len(results)), squeeze=False,
        gridspec_kw={"width_ratios": [1, 2.4]},
    )  # fmt: skip
    for row, res in zip(axes, results, strict=True):
        rec = np.array(res["ground_truth"]["recovery"])
        ax = row[0]
        im = ax.imshow(rec, vmin=0, vmax=1, cmap="viridis")
        for la, h in res["ground_truth"]["circuit"]:
            ax.add_patch(plt.Rectangle((h - 0.5, la - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(rec.shape[1]))
        ax.set_yticks(range(rec.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{res['model']}: recovery alone\n(red: ground truth)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax = row[1]
        names = [f"{r['method']}\nvs {r['against']}" for r in res["rows"]]
        auc = [r["roc_auc"] for r in res["rows"]]
        ax.barh(names, np.nan_to_num(auc, nan=0.0), color="tab:blue")
        for i, r in enumerate(res["rows"]):
            text = "n/a" if np.isnan(r["roc_auc"]) else f"{r['roc_auc']:.2f}"
            ax.text(0.01, i, f"AUC {text}  P {r['precision']:.2f}  R {r['recall']:.2f}",
                    va="center", color="black", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})  # fmt: skip
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("ROC AUC against the ground truth")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
                f"{r['precision']:5.2f} {r['recall']:5.2f}  {r['labelled']}"
            )
        if res["validation"]:
            v = res["validation"]
            print(
                f"{res['model']:<10} validation of induction (top-{v['k']} masked): "
                f"{v['metric']} drop {v['top_drop']:.3f} vs random "
                f"{v.get('random_drop_mean', float('nan')):.3f}"
                + (f" ({v['control_warning']})" if "control_warning" in v else "")
            )
    if missing:
        print(f"not shipped (train with `interp train-toy --planted NAME`): {', '.join(missing)}")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
