"""What every ground-truth benchmark row shares: precision / recall, the AUC evidence beside the
trivial baselines (``interp.evidence``), and the discrete-code SAE over seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

UNKNOWN = "not established"  # no ground truth for this role: heads labelled, nothing scored
N_SEEDS = 10


def score_against(scores: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Precision / recall of the ``predicted`` heads vs ``truth``."""
    from sklearn.metrics import precision_score, recall_score

    return {
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "n_truth": int(truth.sum()),
        "n_predicted": int(predicted.sum()),
        "false_positives": int((predicted & ~truth).sum()),
    }


def with_evidence(
    scores: np.ndarray, truth: np.ndarray, baselines: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The AUC evidence of ``scores`` ([heads] or [seeds, heads]) beside the baselines, or
    nothing where the truth has a single class (no AUC exists)."""
    from interp.evidence.claims import evidence_row

    if not 0 < truth.sum() < len(truth):
        return {}
    return evidence_row(scores, truth, baselines)


def top(scores: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(scores), dtype=bool)
    out[np.argsort(-scores, kind="stable")[:k]] = True
    return out


def heads_str(mask: np.ndarray, n_heads: int) -> str:
    return ", ".join(f"L{i // n_heads}.H{i % n_heads}" for i in np.flatnonzero(mask)) or "none"


def model_baselines(model, task=None) -> dict[str, np.ndarray]:
    """The trivial rankings of every head (``interp.evidence.baselines``): on the model folder's
    own prompts, and with a task the write norm on its clean prompts and the write change
    between its clean and corrupted prompts."""
    import torch

    from circuits.discovery import head_outputs
    from interp.evidence import baselines as b
    from interp.inputs.prompts import load_prompts, model_prompts_file
    from interp.tokens import tokenize

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    prompts = load_prompts(model_prompts_file(model))
    out = {
        "layer index": b.layer_index(n_layers, n_heads),
        "layer index (reversed)": b.layer_index(n_layers, n_heads, reversed=True),
        "write norm": b.write_norm(model, tokenize(model, prompts)),
        "s_0": b.first_token_mass(model, prompts),
    }
    if task is not None:
        # the write norm on the task's own clean prompts: what a head writes where it works
        out["write norm (task prompts)"] = b.write_norm(model, task.clean)
        x = torch.cat([head_outputs(model, task.clean), head_outputs(model, task.corrupted)])
        positive = np.r_[np.ones(len(task.answer), bool), np.zeros(len(task.answer), bool)]
        out["write change"] = b.write_change(x, positive)
    return out


def sae_seed_scores(model, task, sae_epochs: int, seeds: int) -> dict[str, np.ndarray]:
    """The discrete-code SAE (official recipe: 10 training examples, position-averaged writes)
    trained from each seed: node scores [seed, head], edge scores [seed, head, head], and the
    node scores of the same SAE recipe on each head's write at the LAST position (not the
    official average: how much averaging dilutes a contrast confined to one position)."""
    import torch

    from circuits.discovery import head_outputs, sae_training_examples
    from interp.ablation.heads import head_writes
    from interp.sae import edge_scores, node_scores, train_sae

    def last(batch):
        weights = torch.zeros(batch.tokens.shape)
        for i, n in enumerate(batch.lengths):
            weights[i, n - 1] = 1.0
        return head_writes(model, batch, weights)

    positive = np.r_[np.ones(len(task.answer), bool), np.zeros(len(task.answer), bool)]
    averaged = torch.cat([head_outputs(model, task.clean), head_outputs(model, task.corrupted)])
    at_last = torch.cat([last(task.clean), last(task.corrupted)])
    out: dict[str, list] = {"nodes": [], "edges": [], "last": []}
    for seed in range(seeds):
        for key, x in (("nodes", averaged), ("last", at_last)):
            train = sae_training_examples(len(x), 10, seed)
            sae, _ = train_sae(x[train].reshape(-1, x.shape[-1]), epochs=sae_epochs, seed=seed,
                               progress=False)  # fmt: skip
            codes = sae.codes(x).numpy()
            out[key].append(node_scores(codes, positive))
            if key == "nodes":
                out["edges"].append(edge_scores(codes, positive))
    return {k: np.stack(v) for k, v in out.items()}


def refused_row(name: str, method: str, role: str, error: Exception) -> dict[str, Any]:
    return {"model": name, "method": method, "against": role, "labelled": f"refused: {error}",
            "seconds": 0.0}  # fmt: skip


def attention_sae_sets(model, seeds: int, *, expansion: int = 4, k: int = 8, epochs: int = 30):
    """Attention-output TopK SAEs (``interp.sae.attention_output``) of every layer trained on
    the model folder's own prompts, one set per seed: [{layer: TopKSAE}, ...]."""
    from interp.inputs.text import model_prompt_samples
    from interp.sae.attention_output import collect_z
    from interp.sae.topk import train_topk_sae

    batch = model_prompt_samples(model, 64, 256)
    zs = collect_z(model, batch, range(int(model.cfg.n_layers)))
    return [
        {
            la: train_topk_sae(x, d_sae=expansion * x.shape[1], k=k, epochs=epochs, seed=s)[0]
            for la, x in zs.items()
        }  # fmt: skip
        for s in range(seeds)
    ]
