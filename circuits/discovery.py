"""Circuit discovery on a task: discrete-code SAE (O'Neill & Bui 2024) vs exhaustive activation
patching of every head, with ROC AUC, precision/recall, faithfulness and runtimes.

- SAE input per (example, head): the head's output written to the residual stream,
  z[pos, h] @ W_O[h], averaged over the example's real positions (docs/methods.md section 4).
  Positives = clean prompts, negatives = corrupted prompts. Node score = positive-only codes.
  As the official code, the SAE trains on 10 examples (clean and corrupted shuffled together,
  ``sae_examples``) and codes are computed on all of them; ``roc_auc_sae_held_out`` also scores
  heads from the examples the SAE never saw.
- Reference circuit: the ``circuit_fraction`` of heads with the largest |normalised patching
  effect| (patching each head's ``hook_z`` from the corrupted run into the clean run, metric =
  logit difference answer - wrong).
- Faithfulness of a circuit = logit difference with every head outside it mean-ablated (mean
  over clean and corrupted prompts) / logit difference of the full model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from transformer_lens.model_bridge import TransformerBridge

from circuits.tasks import TaskBatch
from interp.ablation import ablate
from interp.ablation.heads import head_writes
from interp.ablation.patching import activation_patching
from interp.defaults import SAE_EXAMPLES
from interp.errors import InputError
from interp.sae import edge_scores, node_scores, train_sae
from interp.tokens import TokenBatch, from_token_ids


@torch.no_grad()
def head_outputs(model: TransformerBridge, batch: TokenBatch) -> torch.Tensor:
    """[example, layer * head, d_model]: each head's residual-stream write, position-averaged."""
    mask = batch.attention_mask.float()  # [b, pos]
    return head_writes(model, batch, mask / mask.sum(1, keepdim=True))


@dataclass
class Discovery:
    task: str
    table: pd.DataFrame  # one row per head
    summary: dict[str, Any]
    edges: np.ndarray = field(repr=False, default=None)
    sae: Any = field(repr=False, default=None)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def faithfulness_of(model, task: TaskBatch, keep: np.ndarray, n_heads: int) -> float:
    """Logit diff with every head outside ``keep`` mean-ablated / full logit diff."""
    heads = [(int(i) // n_heads, int(i) % n_heads) for i in np.flatnonzero(~keep)]
    reference = from_token_ids(
        model,
        [t[:n].tolist() for t, n in zip(task.clean.tokens, task.clean.lengths, strict=True)]
        + [
            t[:n].tolist()
            for t, n in zip(task.corrupted.tokens, task.corrupted.lengths, strict=True)
        ],
    )
    with torch.no_grad():
        full = task.logit_diff(model(task.clean.tokens, attention_mask=task.clean.attention_mask))
        with ablate(model, heads, "mean", reference=reference):
            part = task.logit_diff(
                model(task.clean.tokens, attention_mask=task.clean.attention_mask)
            )
    return part / full if full else float("nan")


def sae_training_examples(n: int, k: int | None, seed: int) -> np.ndarray:
    """Indices of the ``k`` examples (clean and corrupted shuffled together, as the official
    prepare_data) the SAE trains on; all ``n`` when ``k`` is None or >= n."""
    if k is None or k >= n:
        return np.arange(n)
    if k < 1:
        raise InputError(f"the SAE needs at least 1 training example, got {k}")
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def discover(
    model: TransformerBridge,
    task: TaskBatch,
    *,
    circuit_fraction: float = 0.1,
    seed: int = 0,
    sae_epochs: int = 500,
    sae_examples: int | None = SAE_EXAMPLES,
    progress: bool = True,
) -> Discovery:
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    total = n_layers * n_heads
    with torch.no_grad():
        clean_logits = model(task.clean.tokens, attention_mask=task.clean.attention_mask)
        corrupt_logits = model(task.corrupted.tokens, attention_mask=task.corrupted.attention_mask)
    baseline = {
        "clean_logit_diff": task.logit_diff(clean_logits),
        "clean_accuracy": task.accuracy(clean_logits),
        "corrupted_logit_diff": task.logit_diff(corrupt_logits),
        "n_prompts": len(task.answer),
    }
    # SAE discovery
    t0 = time.perf_counter()
    pos = head_outputs(model, task.clean)
    neg = head_outputs(model, task.corrupted)
    x = torch.cat([pos, neg])  # [2n, heads, d_model]
    positive = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    train = sae_training_examples(len(x), sae_examples, seed)
    sae, losses = train_sae(
        x[train].reshape(-1, x.shape[-1]), epochs=sae_epochs, seed=seed, progress=progress
    )
    codes = sae.codes(x).numpy()  # [2n, heads], every example (official)
    nodes = node_scores(codes, positive)
    held_out = np.setdiff1d(np.arange(len(x)), train)
    sae_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    edges = edge_scores(codes, positive)
    edge_seconds = time.perf_counter() - t1
    # exhaustive activation patching
    t0 = time.perf_counter()
    effects = (
        activation_patching(
            model,
            task.clean,
            task.corrupted,
            task.logit_diff,
            hook="z",
            progress=progress,
            metric_reads_last_token=True,  # logit_diff reads each prompt's last token
        )  # fmt: skip
        .reshape(-1)
        .numpy()
    )
    patch_seconds = time.perf_counter() - t0
    k = max(1, round(circuit_fraction * total))
    ref = _top(np.abs(np.nan_to_num(effects)), k)
    sae_circuit = _top(nodes, k)
    auc = roc_auc_score(ref, nodes) if 0 < ref.sum() < total else float("nan")
    auc_held_out = float("nan")  # node scores from examples the SAE never saw
    if len(held_out) and 0 < ref.sum() < total and positive[held_out].any():
        held_nodes = node_scores(codes[held_out], positive[held_out])
        auc_held_out = float(roc_auc_score(ref, held_nodes))
    summary = {
        "task": task.name,
        **baseline,
        "circuit_size": k,
        "circuit_fraction": circuit_fraction,
        "roc_auc_sae_vs_patching": float(auc),
        "roc_auc_sae_held_out": auc_held_out,
        "sae_training_examples": int(len(train)),
        "precision_at_k": float(precision_score(ref, sae_circuit)),
        "recall_at_k": float(recall_score(ref, sae_circuit)),
        "faithfulness_patching_circuit": faithfulness_of(model, task, ref, n_heads),
        "faithfulness_sae_circuit": faithfulness_of(model, task, sae_circuit, n_heads),
        "sae_seconds": sae_seconds,
        "edge_seconds": edge_seconds,
        "patching_seconds": patch_seconds,
        "sae_final_loss": losses[-1],
        "n_distinct_codes": int(len(np.unique(codes))),
        "seed": seed,
    }
    table = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "patch_effect": effects,
            "sae_node_score": nodes,
            "in_patching_circuit": ref,
            "in_sae_circuit": sae_circuit,
        }
    )
    return Discovery(task.name, table, summary, edges, sae)


def overlap(a: pd.Series, b: pd.Series) -> float:
    """Shared heads as a fraction of the smaller circuit (equal sizes: |A & B| / k)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float((a & b).sum() / max(1, min(a.sum(), b.sum())))
