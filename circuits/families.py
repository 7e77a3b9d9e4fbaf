"""Discrete-code SAE discovery of head FAMILIES (retrieval, sink, anchor heads).

The same method as circuit discovery (O'Neill & Bui 2024; ``circuits.discovery``): one SAE on
every head's residual-stream write, discrete code = argmax latent, node score of a head = number
of codes it shows on positive examples and never on negative ones. What changes is the contrast:
each family gets positives and negatives that differ exactly in what that family reads, and a
readout position where the family acts. The node scores are then judged by ROC AUC against the
labels of the family's own detector (read from a scan's run folder).

- retrieval: positives = needle prompts the model answered (ROUGE-1 recall > 0.5 in the scan's
  needle tests); negatives = the same prompts with the needle sentence removed. Readout: the last
  prompt position (where the answer is produced). Retrieval heads copy from the needle, so their
  write there changes; heads that do not look at the needle write the same thing.
- sink: positives = Gu et al.'s text samples (64 tokens, each tokenized on its own); negatives =
  the same samples with token 0 hidden as a key (attention mask 0, positions unchanged).
  Readout: mean over positions 1 .. N-1. A sink head puts most of its attention on token 0 and
  must move it elsewhere; a head that barely looks at token 0 writes nearly the same.
- anchor: positives = 128-token haystack windows; negatives = the same windows with the far
  context (tokens 1 .. N-1-W, W = 10 the WAAD window) taken from the next window; token 0 (the
  sink) and the last W tokens are kept. Readout: the last position. Global (anchor-forming) heads
  read the far context, local heads (span below W) do not. The anchor detector labels only the
  heads of its analysed layers; the AUC is computed over those heads.

Besides the node score, the summary gives the ROC AUC of the normalised node score (positive-only
codes / distinct codes, the official option) and of ``write_change``, a baseline without the SAE
(how much each head's write moves between a positive and its paired negative): it tells a
contrast that carries no family signal apart from codes that lose it.

SAE hyperparameters are the circuit discovery's (official: 200 latents, lambda 0.02, 500 epochs,
trained on 10 examples, codes on all); ``roc_auc_held_out`` scores heads from the examples the
SAE never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from circuits.discovery import sae_training_examples
from interp.ablation.heads import head_writes as weighted_head_writes
from interp.defaults import SAE_EXAMPLES
from interp.errors import InputError
from interp.evidence.baselines import write_change
from interp.heads.anchor import W
from interp.heads.retrieval import make_tests
from interp.inputs.text import haystack_windows, text_samples
from interp.runs.folder import RunFolder
from interp.sae import node_scores, train_sae
from interp.tokens import TokenBatch

FAMILIES = ("retrieval", "sink", "anchor")  # each a registered detector whose labels it scores
ANCHOR_TOKENS = 128


@dataclass
class Contrast:
    """Inputs of one family: positives then negatives, each [n, pos] tokens, the attention
    mask and the readout weights over positions (rows sum to 1)."""

    tokens: list[Tensor]  # one [pos] tensor per example (lengths may differ)
    masks: list[Tensor]
    readout: list[Tensor]
    positive: np.ndarray  # [n_examples] bool


@torch.no_grad()
def head_writes(
    model: TransformerBridge, c: Contrast, batch_size: int = 8, progress: bool = False
) -> Tensor:
    """[example, layer * head, d_model]: each head's write to the residual stream (z @ W_O),
    weighted over positions by the example's readout (``interp.ablation.heads.head_writes``).
    Examples are right-padded into batches (padding is masked and has readout weight 0, so a
    causal model's real positions are as in an unpadded run)."""
    pad = int(model.tokenizer.pad_token_id or 0)
    out = []
    for s in tqdm(range(0, len(c.tokens), batch_size), desc="head writes", disable=not progress):
        idx = range(s, min(s + batch_size, len(c.tokens)))
        n = max(len(c.tokens[i]) for i in idx)
        toks = torch.full((len(idx), n), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        weights = torch.zeros((len(idx), n))
        for b, i in enumerate(idx):
            k = len(c.tokens[i])
            toks[b, :k], mask[b, :k], weights[b, :k] = c.tokens[i], c.masks[i], c.readout[i]
        lengths = [len(c.tokens[i]) for i in idx]
        batch = TokenBatch(toks, mask, lengths, [[] for _ in idx])
        out.append(weighted_head_writes(model, batch, weights))
    return torch.cat(out)


def _last(n: int) -> Tensor:
    w = torch.zeros(n)
    w[-1] = 1.0
    return w


def retrieval_contrast(model: TransformerBridge, tests_table: pd.DataFrame) -> Contrast:
    answered = set(tests_table.loc[tests_table["rouge1_recall"] > 0.5, "test"])
    tests = [t for t in make_tests(model) if t.key in answered]
    if not tests:
        raise InputError(
            "no needle test of the run folder was answered (ROUGE-1 recall > 0.5); the "
            "retrieval contrast needs prompts the model answers"
        )
    pos = [torch.tensor(t.ids) for t in tests]
    neg = [torch.tensor(t.ids[: t.needle_start] + t.ids[t.needle_end :]) for t in tests]
    seqs = pos + neg
    return Contrast(
        seqs, [torch.ones_like(s) for s in seqs], [_last(len(s)) for s in seqs],
        np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)],
    )  # fmt: skip


def sink_contrast(model: TransformerBridge) -> Contrast:
    batch = text_samples(model)
    seqs = [batch.tokens[i, :n] for i, n in enumerate(batch.lengths)]
    hidden = []
    for s in seqs:
        m = torch.ones_like(s)
        m[0] = 0  # token 0 hidden as a key; positions stay the same
        hidden.append(m)
    readout = [
        torch.cat([torch.zeros(1), torch.full((len(s) - 1,), 1 / (len(s) - 1))]) for s in seqs
    ]
    return Contrast(
        seqs + seqs, [torch.ones_like(s) for s in seqs] + hidden, readout + readout,
        np.r_[np.ones(len(seqs), bool), np.zeros(len(seqs), bool)],
    )  # fmt: skip


def anchor_contrast(model: TransformerBridge, n: int = 20) -> Contrast:
    windows = haystack_windows(model, ANCHOR_TOKENS, n + 1).tokens
    pos = [windows[i] for i in range(n)]
    neg = []
    for i in range(n):
        s = windows[i].clone()
        s[1 : ANCHOR_TOKENS - W] = windows[i + 1][1 : ANCHOR_TOKENS - W]
        neg.append(s)
    seqs = pos + neg
    return Contrast(
        seqs, [torch.ones_like(s) for s in seqs], [_last(len(s)) for s in seqs],
        np.r_[np.ones(n, bool), np.zeros(n, bool)],
    )  # fmt: skip


def _labels(run: Path, family: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    hint = (
        f"run `interp scan MODEL --detectors {family} --out {run}` first (the family's detector "
        "labels are the reference)"
    )
    result = RunFolder(run).require_detector(family, hint)
    extra: dict[str, Any] = {}
    if family == "retrieval":
        if "tests" not in result.extra:
            raise InputError(f"{run}'s retrieval table has no needle tests: rescan retrieval")
        extra["tests"] = result.extra["tests"]
    return result.table, extra


def check_families(families: Sequence[str], run: Path) -> None:
    """Known family names, each with its detector's labels in ``run`` (before any work)."""
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        raise InputError(f"unknown head families {bad}; choose from {', '.join(FAMILIES)}")
    for family in families:
        _labels(run, family)


CONTRASTS: dict[str, Callable[..., Contrast]] = {
    "retrieval": lambda model, extra: retrieval_contrast(model, extra["tests"]),
    "sink": lambda model, extra: sink_contrast(model),
    "anchor": lambda model, extra: anchor_contrast(model),
}


@dataclass
class FamilyDiscovery:
    family: str
    table: pd.DataFrame  # one row per head: layer, head, sae_node_score, detector_label, scored
    summary: dict[str, Any]


def discover_family(
    model: TransformerBridge,
    family: str,
    run: Path,
    *,
    seed: int = 0,
    sae_epochs: int = 500,
    sae_examples: int | None = SAE_EXAMPLES,
    progress: bool = True,
    seeds: Sequence[int] | None = None,
    attn_saes: Sequence[dict[int, Any]] = (),
    evidence: bool = False,
    baselines: dict[str, np.ndarray] | None = None,
) -> FamilyDiscovery:
    """Node scores of every head on the family's contrast, ROC AUC vs the detector's labels.

    ``seeds``: train the discrete-code SAE once per seed (the table's node score is the mean;
    default: ``seed`` alone). ``evidence``: also every method beside the trivial baselines
    against the family's reference (``circuits.family_evidence``; ``attn_saes``: attention-
    output SAE sets, one per seed; ``baselines``: the model's trivial rankings, computed once
    by the caller for several families), in ``summary["evidence"]``."""
    if family not in FAMILIES:
        raise InputError(f"unknown head family {family!r}; choose from {', '.join(FAMILIES)}")
    labels, extra = _labels(run, family)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    if len(labels) != n_layers * n_heads:
        raise InputError(
            f"{run} holds {len(labels)} heads for {family}, the model has {n_layers * n_heads}: "
            "the run folder belongs to another model"
        )
    labels = labels.sort_values(["layer", "head"]).reset_index(drop=True)
    scored = (
        (labels["group"] != "").to_numpy() if family == "anchor" else np.ones(len(labels), bool)
    )
    truth = labels["label"].to_numpy(bool)
    t0 = time.perf_counter()
    contrast = CONTRASTS[family](model, extra)
    x = head_writes(model, contrast, progress=progress)
    seeds = list(seeds) if seeds else [seed]
    node_runs, norm_runs, held_runs = [], [], []
    for s in seeds:
        train = sae_training_examples(len(x), sae_examples, s)
        sae, losses = train_sae(
            x[train].reshape(-1, x.shape[-1]), epochs=sae_epochs, seed=s, progress=progress
        )
        codes = sae.codes(x).numpy()  # [example, head]
        node_runs.append(node_scores(codes, contrast.positive))
        norm_runs.append(node_scores(codes, contrast.positive, normalise=True))
        held_out = np.setdiff1d(np.arange(len(x)), train)  # examples this seed's SAE never saw
        pos = contrast.positive[held_out]
        held_runs.append(
            node_scores(codes[held_out], pos)
            if pos.any() and (~pos).any()
            else np.full(codes.shape[1], np.nan)
        )
    nodes, normalised = np.mean(node_runs, axis=0), np.mean(norm_runs, axis=0)
    held = np.mean(held_runs, axis=0)
    change = write_change(x, contrast.positive)

    def auc(scores: np.ndarray) -> float:
        y, s = truth[scored], scores[scored]
        ok = 0 < y.sum() < len(y) and not np.isnan(s).any()
        return float(roc_auc_score(y, s)) if ok else float("nan")

    summary = {
        "family": family,
        "n_positive_examples": int(contrast.positive.sum()),
        "n_negative_examples": int((~contrast.positive).sum()),
        "n_heads_scored": int(scored.sum()),
        "n_detector_heads": int(truth[scored].sum()),
        "roc_auc": auc(nodes),
        "roc_auc_held_out": auc(held),
        "roc_auc_normalised": auc(normalised),
        "roc_auc_write_change": auc(change),
        "sae_training_examples": int(len(train)),
        "sae_final_loss": losses[-1],
        "n_distinct_codes": int(len(np.unique(codes))),
        "seconds": time.perf_counter() - t0,
        "seed": seed,
        "seeds": seeds,
    }
    if evidence:
        from circuits.family_evidence import family_evidence

        methods = {"discrete-code SAE": np.array(node_runs), "write change": change}
        if "score" in labels:
            methods[f"{family} detector"] = labels["score"].to_numpy(dtype=float)
        summary["evidence"] = family_evidence(
            model, family, run, truth, scored, methods, attn_saes, baselines
        )
    table = pd.DataFrame(
        {
            "layer": labels["layer"], "head": labels["head"], "sae_node_score": nodes,
            "sae_node_score_held_out": held, "sae_node_score_normalised": normalised,
            "write_change": change, "detector_label": truth, "scored": scored,
        }
    )  # fmt: skip
    return FamilyDiscovery(family, table, summary)
