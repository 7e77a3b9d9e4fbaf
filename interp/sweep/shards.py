"""Shards of a sweep (the unit of work, retry and resume) and what one shard computes.

A shard is (model, prompt set, context length, a slice of prompt indices). ``plan`` lists them
deterministically from the config alone (no model needed), so a resumed sweep finds the same
shard ids. ``ShardRunner`` holds one loaded model (one per process or Ray actor) and computes a
shard: every prompt runs alone (no padding) through ``interp.stats.capture.for_each_layer``; the
measures come from the streaming attention statistics and exact sparse pattern entries, never
from an n x n pattern (``interp.heads.on_prompt.prompt_measures``), and each per-prompt,
per-head one becomes a row.

Measures (one table each): ``head_stats`` (entropy, first_token_mass, prev_token_mass,
mean_distance as means over queries t >= 1, and sink_score_0 = s_0 = sum_i A[i,0] / N), and for
every detector that declares ``per_prompt`` its own per-prompt scoring on the prompt itself
(``prompt_pairs`` / ``prompt_scores`` of the detector class: the sink detector's s_0 and hidden
sinks, the classic detectors' sum(A * D) / sum(A) with D on the prompt's own tokens, NaN where D
is empty). These are not the scan's scores (which use the detectors' own inputs, e.g. repeated
random tokens), so the dashboard run folders of a sweep name them ``<detector>_on_prompts``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from interp.errors import InputError
from interp.heads.on_prompt import STATS, prompt_measures
from interp.inputs.prompts import load_prompts
from interp.sweep.config import PromptSet, SweepConfig
from interp.tokens import framed_windows, tokenize


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
    return len(load_prompts(Path(p.source)))


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
            from interp.inputs.needles import haystack_text

            n = shard.length
            if n > int(model.cfg.n_ctx):
                raise InputError(
                    f"context length {n} is longer than {self.name}'s context {model.cfg.n_ctx}"
                )
            windows = framed_windows(model.tokenizer, haystack_text(), n)  # the detectors' own
            if len(windows) < shard.stop:
                raise InputError(
                    f"the bundled haystack has {len(windows)} windows of {n} tokens, fewer than "
                    f"{shard.stop}"
                )
            return windows[shard.start : shard.stop]
        if shard.kind == "task":
            key = (shard.source, shard.n)
            if key not in self._tasks:
                from interp.inputs.prompts import prompt_source

                self._tasks[key] = prompt_source("task")(model, shard.source, shard.n)
            texts = self._tasks[key][shard.start : shard.stop]
        else:
            texts = load_prompts(None if shard.kind == "builtin" else Path(str(shard.source)))
            texts = texts[shard.start : shard.stop]
        if not texts:
            return []
        batch = tokenize(model, texts)
        return [batch.tokens[i, :n].tolist() for i, n in enumerate(batch.lengths)]

    def measures(self, ids: list[int], wanted: set[str]) -> dict[str, torch.Tensor]:
        """The measures of one prompt (``interp.heads.on_prompt.prompt_measures``)."""
        return prompt_measures(self.model, ids, wanted)

    def run(self, shard: Shard) -> dict[str, pd.DataFrame]:
        """One table per detector of ``shard`` (rows: prompt x layer x head)."""
        rows: dict[str, list[dict]] = {d: [] for d in shard.detectors}
        for offset, ids in enumerate(self.prompts(shard)):
            if len(ids) < 2:
                continue
            m = self.measures(ids, set(shard.detectors))
            n_layers, n_heads = next(iter(m.values())).shape
            key = {"model": shard.label, "prompt_set": shard.prompt_set,
                   "prompt": shard.start + offset, "length": len(ids)}  # fmt: skip
            cols = {
                name: (
                    {st: st for st in STATS} if name == "head_stats"
                    else {k.split(".", 1)[1]: k for k in m if k.startswith(f"{name}.")}
                )
                for name in rows
            }  # fmt: skip
            for layer in range(n_layers):
                for h in range(n_heads):
                    base = {**key, "layer": layer, "head": h}
                    for name, table in rows.items():
                        table.append(
                            {**base, **{c: _value(m[k][layer, h]) for c, k in cols[name].items()}}
                        )
        return {name: pd.DataFrame(r) for name, r in rows.items()}


def _value(x: torch.Tensor) -> float | int:
    """A table cell: counts (hidden sinks) stay integers, everything else is a float."""
    return float(x) if x.is_floating_point() else int(x)
