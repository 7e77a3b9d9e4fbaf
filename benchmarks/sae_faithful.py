"""SAE circuit discovery before and after following the official code, same prompts and seeds.

    python benchmarks/sae_faithful.py                     # SmolLM2, the four circuit tasks

Per task (20 prompt pairs, seed 0): exhaustive activation patching of every head's ``hook_z``
once (the reference circuit: top 10 % |effect|), then three SAEs on the same head outputs:

- ``before``: the former training (penalty = lambda x mean over examples AND latents of |f|,
  decoder unit norm per latent, tied bias at the coordinate-wise median, b_enc at zero, all
  examples), reimplemented here as the baseline;
- ``l1_fix``: the official model and loss (``interp.sae.train_sae``), all examples;
- ``official``: the same trained on 10 examples (the default of ``interp circuit``), codes on
  all; also the ROC AUC from held-out examples only.

Reports ROC AUC of the node score vs the patching circuit, precision at k, faithfulness of the
SAE circuit, distinct codes and seconds.

Evidence (docs/methods.md section 10): the official SAE is also trained from ``--seeds`` seeds
(10 by default); its seed-mean AUC against the patching circuit, with the bootstrap interval over
heads, the seeds' spread and the exact null p-value, stands beside the trivial rankings of the
same heads (layer index both ways, mean write norm on the clean prompts, write change between
clean and corrupted writes) with the claims rule's verdict. The patching circuit, the effects
and every seed's scores are stored. Prints two tables; writes
``benchmarks/results/sae_faithful_<model>.json`` (with ``--evidence-only``, only the evidence
table, in ``sae_evidence_<model>.json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
TASKS = ("ioi", "colored_objects", "greater_than", "docstring")


def train_before(x: torch.Tensor, epochs: int = 500, seed: int = 0):
    """The former training loop, kept only as this benchmark's baseline."""
    from interp.sae import DiscreteCodeSAE

    torch.manual_seed(seed)
    sae = DiscreteCodeSAE(x.shape[1], 200, decoder_norm="latent")
    with torch.no_grad():
        sae.b_enc.zero_()
        sae.b_dec.copy_(x.median(0).values)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    for _ in range(epochs):
        f, x_hat = sae(x)
        loss = (x_hat - x).pow(2).mean() + 0.02 * f.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sae.normalise()
    return sae


def run_task(model, name: str, n: int, seed: int, seeds: int, evidence_only: bool = False) -> dict:
    from sklearn.metrics import precision_score, roc_auc_score

    from circuits.discovery import (
        _top,
        faithfulness_of,
        head_outputs,
        sae_training_examples,
    )
    from circuits.tasks import make_task
    from interp.ablation.patching import activation_patching
    from interp.sae import node_scores, train_sae

    task = make_task(model, name, n=n, seed=seed)
    n_heads = int(model.cfg.n_heads)
    total = int(model.cfg.n_layers) * n_heads
    pos, neg = head_outputs(model, task.clean), head_outputs(model, task.corrupted)
    x = torch.cat([pos, neg])
    positive = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    t0 = time.perf_counter()
    effects = activation_patching(
        model, task.clean, task.corrupted, task.logit_diff, hook="z", progress=False
    )
    patch_s = time.perf_counter() - t0
    k = max(1, round(0.1 * total))
    ref = _top(np.abs(np.nan_to_num(effects.reshape(-1).numpy())), k)
    rows = {}
    for variant in () if evidence_only else ("before", "l1_fix", "official"):
        t0 = time.perf_counter()
        train = sae_training_examples(len(x), 10 if variant == "official" else None, seed)
        flat = x[train].reshape(-1, x.shape[-1]).float()
        sae = (
            train_before(flat, seed=seed) if variant == "before" else train_sae(flat, seed=seed)[0]
        )
        codes = sae.codes(x.float()).numpy()
        nodes = node_scores(codes, positive)
        circuit = _top(nodes, k)
        row = {
            "roc_auc": float(roc_auc_score(ref, nodes)),
            "precision_at_k": float(precision_score(ref, circuit)),
            "faithfulness_sae_circuit": faithfulness_of(model, task, circuit, n_heads),
            "n_distinct_codes": int(len(np.unique(codes))),
            "training_examples": int(len(train)),
            "seconds": time.perf_counter() - t0,
        }
        held = np.setdiff1d(np.arange(len(x)), train)
        if len(held) and positive[held].any():
            held_nodes = node_scores(codes[held], positive[held])
            row["roc_auc_held_out"] = float(roc_auc_score(ref, held_nodes))
        rows[variant] = row
        print(f"{name:16s} {variant:9s} AUC {row['roc_auc']:.3f} "
              f"P@k {row['precision_at_k']:.2f} faith {row['faithfulness_sae_circuit']:.2f} "
              f"codes {row['n_distinct_codes']} ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
    evidence = seed_evidence(model, task, x, positive, ref, seeds)
    best = evidence["best_baseline"]
    print(f"{name:16s} official x {seeds} seeds: AUC {evidence['auc']:.3f} "
          f"[{evidence['interval'][0]:.3f}, {evidence['interval'][1]:.3f}], best baseline "
          f"{best} {evidence['baselines'][best]['auc']:.3f}: {evidence['verdict']}",
          flush=True)  # fmt: skip
    return {
        "patching_seconds": patch_s,
        "variants": rows,
        "patch_effect": [round(float(e), 6) for e in np.nan_to_num(effects.reshape(-1).numpy())],
        "circuit": [int(i) for i in np.flatnonzero(ref)],
        "evidence": evidence,
    }


def seed_evidence(model, task, x, positive, ref, seeds: int) -> dict:
    """The official SAE from ``seeds`` seeds against the patching circuit ``ref``, beside the
    trivial baselines, with the claims rule's verdict (``interp.evidence``)."""
    from circuits.discovery import sae_training_examples
    from interp.evidence import baselines as b
    from interp.evidence.claims import evidence_row
    from interp.sae import node_scores, train_sae

    runs = []
    for s in range(seeds):
        train = sae_training_examples(len(x), 10, s)
        sae, _ = train_sae(x[train].reshape(-1, x.shape[-1]).float(), seed=s, progress=False)
        runs.append(node_scores(sae.codes(x.float()).numpy(), positive))
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    base = {
        "layer index": b.layer_index(n_layers, n_heads),
        "layer index (reversed)": b.layer_index(n_layers, n_heads, reversed=True),
        "write norm": b.write_norm(model, task.clean),
        "write change": b.write_change(x.float(), positive),
    }
    row = evidence_row(np.stack(runs), ref, base)
    row["seed_scores"] = [[round(float(v), 6) for v in r] for r in runs]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=10, help="SAE seeds for the evidence table")
    ap.add_argument(
        "--evidence-only",
        action="store_true",
        help="only the seeds-and-baselines table (sae_evidence_<model>.json)",
    )
    args = ap.parse_args()
    import interp

    model = interp.load_model(args.model)
    results = {
        name: run_task(model, name, args.n, args.seed, args.seeds, args.evidence_only)
        for name in args.tasks
    }
    print(f"\n{'task':16s} {'AUC before':>10s} {'L1 fix':>8s} {'official':>9s} {'held-out':>9s}")
    for name, r in results.items() if not args.evidence_only else ():
        v = r["variants"]
        print(f"{name:16s} {v['before']['roc_auc']:>10.3f} {v['l1_fix']['roc_auc']:>8.3f} "
              f"{v['official']['roc_auc']:>9.3f} "
              f"{v['official'].get('roc_auc_held_out', float('nan')):>9.3f}")  # fmt: skip
    print(f"\n{'task':16s} {'SAE AUC (mean, 95 % CI, seed range)':38s} {'layer':>6s} "
          f"{'norm':>6s} {'change':>6s}  verdict")  # fmt: skip
    for name, r in results.items():
        e, bl = r["evidence"], r["evidence"]["baselines"]
        layer = max(bl["layer index"]["auc"], bl["layer index (reversed)"]["auc"])
        print(f"{name:16s} {e['auc']:.3f} [{e['interval'][0]:.3f}, {e['interval'][1]:.3f}] "
              f"({e['auc_min']:.2f}-{e['auc_max']:.2f})      {layer:>6.3f} "
              f"{bl['write norm']['auc']:>6.3f} {bl['write change']['auc']:>6.3f}  "
              f"{e['verdict']}")  # fmt: skip
    from interp.report import versions, write_json

    meta = {"model": args.model, "n": args.n, "seed": args.seed, "seeds": args.seeds,
            "circuit_fraction": 0.1,
            "versions": versions()}  # fmt: skip
    stem = "sae_evidence" if args.evidence_only else "sae_faithful"
    out = write_json(
        {"meta": meta, "tasks": results}, RESULTS / f"{stem}_{Path(args.model).name}.json"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
