"""Shards of a sweep (the unit of work, retry and resume) and what one shard computes.

A shard is (model, prompt set, context length, a slice of prompt indices). ``plan`` lists them
deterministically from the config alone (no model needed), so a resumed sweep finds the same
shard ids. ``ShardRunner`` holds one loaded model (one per process or Ray actor) and computes a
shard: every prompt runs alone (no padding), its attention patterns are taken a few layers at a
time (memory bound ``PATTERN_BUDGET``), and each per-prompt, per-head measure becomes a row.

Measures (one table each, methods.md sections 1-2 and ``interp.heads.classic``):
- ``head_stats``: entropy, first_token_mass, prev_token_mass, mean_distance (means over queries
  t >= 1) and sink_score_0 (s_0 = sum_i A[i,0] / N);
- ``sink``: score = s_0, hidden_sinks = number of keys j >= 1 with s_j > 0.1;
- ``previous_token`` / ``duplicate_token`` / ``induction``: sum(A * D) / sum(A) with D the
  detection pattern on the prompt itself (NaN where D is empty: no repeated token).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property

import pandas as pd
import torch

from interp.errors import InputError
from interp.heads.classic import (
    duplicate_token_pattern,
    induction_pattern,
    pattern_scores,
    previous_token_pattern,
)
from interp.models.info import is_causal
from interp.prompts import load_prompts
from interp.stats.dense import head_summary, sink_scores
from interp.sweep.config import PromptSet, SweepConfig
from interp.tokens import from_token_ids, tokenize

PATTERN_BUDGET = 2 << 30  # bytes of fp32 patterns held at once
HIDDEN_SINK = 0.1
_DETECTION = {
    "previous_token": previous_token_pattern,
    "duplicate_token": duplicate_token_pattern,
    "induction": induction_pattern,
}
STATS = ("entropy", "first_token_mass", "prev_token_mass", "mean_distance", "sink_score_0")


@dataclass(frozen=True)
class Shard:
    model: str
    label: str
    prompt_set: str
    kind: str
    source: str
    n: int
    length: int  # context length (haystack sets); 0 = the prompts' own lengths
    start: int
    stop: int
    detectors: tuple[str, ...]

    @cached_property
    def id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return (
            f"{self.label}-{self.prompt_set}-{self.length}-{self.start}-"
            + hashlib.sha256(text.encode()).hexdigest()[:10]
        )


def _set_size(p: PromptSet) -> int:
    if p.kind in ("haystack", "task"):
        return p.n
    if p.kind == "builtin":
        return len(load_prompts())
    return len(load_prompts(p.source))


def plan(cfg: SweepConfig) -> list[Shard]:
    """Every shard of the sweep, in a fixed order (model, set, length, start)."""
    shards = []
    for m in cfg.models:
        for p in cfg.prompts:
            lengths = cfg.context_lengths if p.kind == "haystack" else [0]
            size = _set_size(p)
            for length in lengths:
                for start in range(0, size, cfg.shard_size):
                    stop = min(size, start + cfg.shard_size)
                    shards.append(
                        Shard(
                            m.name,
                            m.label,
                            p.name,
                            p.kind,
                            p.source,
                            p.n,
                            length,
                            start,
                            stop,
                            tuple(cfg.detectors),
                        )  # fmt: skip
                    )
    return shards


class ShardRunner:
    """Loads one model once and computes shards of it (a Ray actor wraps one of these)."""

    def __init__(self, model_name: str, threads: int | None = None, device: str = "cpu") -> None:
        from interp.models import load_model

        if threads:
            torch.set_num_threads(threads)
        self.name = model_name
        self.device = device
        self.model = load_model(model_name, device=device)
        self._tasks: dict[tuple[str, int], list[str]] = {}

    def prompts(self, shard: Shard) -> list[list[int]]:
        model = self.model
        if shard.kind == "haystack":
            from interp.heads.needle import haystack_text

            ids = model.tokenizer(haystack_text(), add_special_tokens=False)["input_ids"]
            n = shard.length
            if n > int(model.cfg.n_ctx):
                raise InputError(
                    f"context length {n} is longer than {self.name}'s context {model.cfg.n_ctx}"
                )
            if len(ids) < n * shard.stop:
                raise InputError(
                    f"the bundled haystack has {len(ids)} tokens, fewer than {shard.stop} "
                    f"windows of {n}"
                )
            return [ids[i * n : (i + 1) * n] for i in range(shard.start, shard.stop)]
        if shard.kind == "task":
            key = (shard.source, shard.n)
            if key not in self._tasks:
                from circuits.tasks import make_task

                self._tasks[key] = make_task(model, shard.source, n=shard.n).prompts
            texts = self._tasks[key][shard.start : shard.stop]
        else:
            texts = load_prompts(None if shard.kind == "builtin" else shard.source)
            texts = texts[shard.start : shard.stop]
        if not texts:
            return []
        batch = tokenize(model, texts)
        return [batch.tokens[i, :n].tolist() for i, n in enumerate(batch.lengths)]

    @torch.no_grad()
    def patterns(self, ids: list[int]) -> torch.Tensor:
        """[layer, head, pos, pos] of one prompt, a few layers per forward pass."""
        model = self.model
        n_layers, n_heads, n = int(model.cfg.n_layers), int(model.cfg.n_heads), len(ids)
        per_layer = n_heads * n * n * 4
        chunk = max(1, min(n_layers, PATTERN_BUDGET // max(per_layer, 1)))
        tokens = from_token_ids(model, [ids]).tokens.to(self.device)
        out = []
        for first in range(0, n_layers, chunk):
            names = {f"blocks.{la}.attn.hook_pattern" for la in range(first, first + chunk)}
            _, cache = model.run_with_cache(
                tokens, names_filter=lambda name, names=names: name in names,
                return_cache_object=False,
            )  # fmt: skip
            out += [cache[f"blocks.{la}.attn.hook_pattern"][0].float().cpu()
                    for la in range(first, min(n_layers, first + chunk))]  # fmt: skip
        return torch.stack(out)

    def run(self, shard: Shard) -> dict[str, pd.DataFrame]:
        """One table per detector of ``shard`` (rows: prompt x layer x head)."""
        causal = is_causal(self.model)
        rows: dict[str, list[dict]] = {d: [] for d in shard.detectors}
        for offset, ids in enumerate(self.prompts(shard)):
            if len(ids) < 2:
                continue
            pat = self.patterns(ids)  # [L, H, n, n]
            n_layers, n_heads, n = pat.shape[0], pat.shape[1], pat.shape[-1]
            key = {"model": shard.label, "prompt_set": shard.prompt_set,
                   "prompt": shard.start + offset, "length": n}  # fmt: skip
            tokens = torch.tensor(ids)
            # sum(A * D) / sum(A) per layer and head; NaN where D is empty (nothing to detect)
            det = {
                d: pattern_scores(pat[:, None], tokens[None], [n], _DETECTION[d])
                if _DETECTION[d](tokens).any()
                else torch.full((n_layers, n_heads), float("nan"))
                for d in _DETECTION
                if d in rows
            }
            for layer in range(n_layers):
                a = pat[layer][None]  # [1, H, n, n]
                summ = head_summary(a, [n], causal=causal) if "head_stats" in rows else None
                s = sink_scores(a, [n], causal=causal)[0] if "sink" in rows else None
                for h in range(n_heads):
                    base = {**key, "layer": layer, "head": h}
                    if summ is not None:
                        stats = {k: float(summ[k][h] / summ["n_queries"][h]) for k in STATS[:4]}
                        stats["sink_score_0"] = float(summ["sink_score_0"][h])
                        rows["head_stats"].append({**base, **stats})
                    if s is not None:
                        hidden = int((s[h, 1:] > HIDDEN_SINK).sum())
                        rows["sink"].append(
                            {**base, "score": float(s[h, 0]), "hidden_sinks": hidden}
                        )
                    for name, scores in det.items():
                        rows[name].append({**base, "score": float(scores[layer, h])})
        return {name: pd.DataFrame(r) for name, r in rows.items()}
