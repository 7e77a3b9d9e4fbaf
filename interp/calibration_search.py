"""Choosing heads to calibrate (ACT head search) and scoring multiple-choice datasets.

Dataset files are JSONL, one example per line: ``{"prompt": str, "choices": [str, ...], "label":
int}``. Each choice is scored by the summed log-probability of its tokens after the prompt
(choices usually start with a space: " yes"). The bundled datasets live in
``interp/data/choice/<name>.{calibration,test}.jsonl`` (``scripts/make_choice_datasets.py``).

Dataset groups (``DATASET_GROUPS``; the official code's "task types"): the official code finds one
head set per task type on a calibration set pooled from several datasets (9 datasets x 900
examples). ``--dataset classification`` pools
the calibration splits of ``sentiment`` and ``topic`` (label words after a text),
``--dataset multiple_choice`` those of ``yes_no``, ``arithmetic`` and ``commonsense`` (an answer
among given options); the chosen heads are then tested on each member's own test split.

Search (ACT): on the calibration split, calibrate one head at a time and keep the heads whose
calibration raises accuracy. Candidates are layers 2 .. L-2 as in the official
scripts/calibration.sh (layers 2-30 of the 32-layer Llama-2-7B: the first two layers and the
last layer are never calibrated); SmolLM2: layers 2-28, 243 heads. The kept
heads are then verified together: they are added greedily in order of their own gain and a head
stays only if the set's calibration accuracy does not drop (the paper applies all kept heads;
the greedy check guards against heads that only help alone). It costs one evaluation per head
that helps alone (topic: ~100 of them, most of the 17-minute search). The uncalibrated run is
computed once and reused as the baseline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.calibration import CalibrationConfig, calibration_hooks
from interp.defaults import CALIBRATION_BETA, SINK_THRESHOLD
from interp.errors import InputError
from interp.tokens import from_token_ids

BUNDLED_DATASETS = ("sentiment", "topic", "yes_no", "arithmetic", "commonsense")
DATASET_GROUPS: dict[str, tuple[str, ...]] = {
    "classification": ("sentiment", "topic"),
    "multiple_choice": ("yes_no", "arithmetic", "commonsense"),
}


def bundled_dataset(name: str, split: str) -> Path:
    if name not in BUNDLED_DATASETS:
        raise InputError(
            f"unknown bundled dataset {name!r}; choose one of {', '.join(BUNDLED_DATASETS)}, a "
            f"group ({', '.join(DATASET_GROUPS)}) or a JSONL file"
        )
    return Path(str(files("interp") / "data" / "choice" / f"{name}.{split}.jsonl"))


def members(name: str) -> tuple[str, ...]:
    """The bundled datasets a name stands for: a group's members, or the dataset itself."""
    return DATASET_GROUPS.get(name, (name,))


def pooled_rows(name: str, split: str) -> list[dict]:
    """Every example of ``split`` of a bundled dataset or of all members of a group."""
    return [row for m in members(name) for row in load_dataset(bundled_dataset(m, split))]


def load_dataset(path: Path) -> list[dict]:
    from interp.checks import read_text

    path = Path(path)
    rows = []
    for i, line in enumerate(read_text(path, "dataset file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = (
                isinstance(row["prompt"], str)
                and isinstance(row["choices"], list)
                and len(row["choices"]) >= 2
                and all(isinstance(c, str) and c for c in row["choices"])
                and isinstance(row["label"], int)
                and 0 <= row["label"] < len(row["choices"])
            )
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise InputError(
                f"{path}:{i}: each line must be JSON with 'prompt' (str), 'choices' (>= 2 "
                "non-empty str) and 'label' (index into choices)"
            )
        rows.append(row)
    if not rows:
        raise InputError(f"dataset file {path} has no examples")
    return rows


class _Stop(Exception):
    pass


class ChoiceScorer:
    """Tokenizes every (prompt, choice) once; ``correct(config)`` -> bool per example, with the
    calibration ``config`` applied (None: the uncalibrated model)."""

    def __init__(self, model: TransformerBridge, rows: list[dict], batch_size: int = 64) -> None:
        self.model, self.rows, self.batch_size = model, rows, batch_size
        tok = model.tokenizer
        self.seqs, self.spans, self.owner = [], [], []
        for e, row in enumerate(rows):
            p = tok(row["prompt"])["input_ids"]
            for c in row["choices"]:
                ids = tok(row["prompt"] + c)["input_ids"]
                if ids[: len(p)] != p:  # choice merged with the prompt's last token
                    ids = p + tok(c, add_special_tokens=False)["input_ids"]
                self.seqs.append(ids)
                self.spans.append((len(p), len(ids)))
                self.owner.append(e)
        self.labels = np.array([r["label"] for r in rows])

    @torch.no_grad()
    def scores(self, config: CalibrationConfig | None = None) -> np.ndarray:
        """Summed log-prob of every choice: [n_choices_total]."""
        out = np.zeros(len(self.seqs))
        for s in range(0, len(self.seqs), self.batch_size):
            batch = from_token_ids(self.model, self.seqs[s : s + self.batch_size])
            hooks = (
                calibration_hooks(self.model, config, batch.lengths)
                if config is not None and config.heads
                else []
            )
            resid = self._final_residual(batch, hooks)
            spans = self.spans[s : s + self.batch_size]
            rows = [i for i, (a, b) in enumerate(spans) for _ in range(a - 1, b - 1)]
            cols = [p for a, b in spans for p in range(a - 1, b - 1)]
            # unembed only the positions that predict choice tokens (not [batch, pos, vocab])
            logp = self.model.unembed(self.model.ln_final(resid[rows, cols])).log_softmax(-1)
            targets = torch.tensor(
                [int(batch.tokens[i, p + 1]) for i, p in zip(rows, cols, strict=True)]
            )
            token_lp = logp.gather(-1, targets[:, None])[:, 0]
            k = 0
            for i, (a, b) in enumerate(spans):
                out[s + i] = float(token_lp[k : k + b - a].sum())
                k += b - a
        return out

    def _final_residual(self, batch, hooks) -> torch.Tensor:
        """Residual stream entering the final norm, [batch, pos, d_model]; the forward pass
        stops there (the [batch, pos, vocab] logits are never computed)."""
        got: dict[str, torch.Tensor] = {}

        def grab(x, hook):
            got["resid"] = x
            raise _Stop

        try:
            with self.model.hooks(fwd_hooks=[*hooks, ("ln_final.hook_in", grab)]):
                self.model(batch.tokens, attention_mask=batch.attention_mask)
        except _Stop:
            pass
        return got["resid"]

    def correct(self, config: CalibrationConfig | None = None) -> np.ndarray:
        scores = self.scores(config)
        pred = np.zeros(len(self.rows), dtype=int)
        best = np.full(len(self.rows), -np.inf)
        counter = np.zeros(len(self.rows), dtype=int)
        for score, e in zip(scores, self.owner, strict=True):
            if score > best[e]:
                best[e], pred[e] = score, counter[e]
            counter[e] += 1
        return pred == self.labels


@dataclass
class SearchResult:
    config: CalibrationConfig
    per_head: list[dict[str, Any]]
    baseline: float
    calibrated: float
    seconds: float


def search_heads(
    model: TransformerBridge,
    calibration_rows: list[dict],
    *,
    first_layer: int = 2,
    beta: float = CALIBRATION_BETA,
    threshold: float = SINK_THRESHOLD,
    progress: bool = True,
    provenance: dict | None = None,
) -> SearchResult:
    t0 = time.perf_counter()
    scorer = ChoiceScorer(model, calibration_rows)
    base = float(scorer.correct().mean())  # the uncalibrated run, computed once
    name = str(model.cfg.model_name)
    heads = [
        (la, h) for la in range(first_layer, int(model.cfg.n_layers) - 1)  # never the last layer
        for h in range(int(model.cfg.n_heads))
    ]  # fmt: skip

    def acc(hs) -> float:
        cfg = CalibrationConfig(name, list(hs), beta, threshold)
        return float(scorer.correct(cfg).mean())

    per_head = []
    for la, h in tqdm(heads, desc="calibration search", disable=not progress):
        per_head.append({"layer": la, "head": h, "accuracy": acc([(la, h)])})
    gains = sorted((r for r in per_head if r["accuracy"] > base), key=lambda r: -r["accuracy"])
    chosen: list[tuple[int, int]] = []
    best = base
    for r in tqdm(gains, desc="verify together", disable=not progress):
        trial = acc([*chosen, (r["layer"], r["head"])])
        if trial >= best:
            chosen.append((r["layer"], r["head"]))
            best = trial
    cfg = CalibrationConfig(
        name,
        chosen,
        beta,
        threshold,
        {
            **(provenance or {}),
            "first_layer": first_layer,
            "last_layer": int(model.cfg.n_layers) - 2,
            "n_calibration": len(calibration_rows),
            "calibration_accuracy_before": base,
            "calibration_accuracy_after": best,
            "n_heads_improving_alone": len(gains),
        },
    )
    return SearchResult(cfg, per_head, base, best, time.perf_counter() - t0)


@dataclass
class TestResult:
    """Per-example correctness on one test split before and after a calibration."""

    name: str
    before: np.ndarray  # [n_examples] bool
    after: np.ndarray  # [n_examples] bool

    @property
    def interval(self) -> tuple[float, float]:
        return paired_bootstrap(self.before.astype(float), self.after.astype(float))

    def summary(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "n_test": len(self.before),
            "test_accuracy_before": float(self.before.mean()),
            "test_accuracy_after": float(self.after.mean()),
            "test_difference_ci95": [lo, hi],
        }


def evaluate(model: TransformerBridge, config: CalibrationConfig, name: str, rows: list[dict]):
    """Accuracy on ``rows`` without and with ``config`` applied (same examples, paired)."""
    scorer = ChoiceScorer(model, rows)
    before = scorer.correct()
    after = scorer.correct(config) if config.heads else before
    return TestResult(name, before, after)


def paired_bootstrap(before: np.ndarray, after: np.ndarray, n: int = 2000, seed: int = 0):
    """95 % bootstrap interval of mean(after) - mean(before) over the same examples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(before), size=(n, len(before)))
    diffs = after[idx].mean(1) - before[idx].mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
