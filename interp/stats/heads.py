"""Per-head attention statistics over a prompt set: the scan's ``head_stats`` table.

One row per (layer, head): mean entropy, first-token mass, sink score of token 0 (s_0,
docs/methods.md section 2), previous-token mass and mean attention distance, from the dense
per-prompt sums of ``interp.stats.dense.head_summary``.
"""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.attention import run_heads
from interp.models.info import is_causal, n_kv_heads
from interp.stats.dense import head_summary
from interp.tokens import tokenize

#: the per-head statistics every table, plot and sweep of them uses (the one list)
SCORES = ("entropy", "first_token_mass", "sink_score_0", "prev_token_mass", "mean_distance")
#: the ones that are means over query positions (sink_score_0 is a mean over prompts)
QUERY_MEANS = tuple(s for s in SCORES if s != "sink_score_0")


def head_stats_table(
    model: TransformerBridge, prompts: list[str], *, batch_size: int = 4, progress: bool = True
) -> pd.DataFrame:
    """Mean per-head statistics over ``prompts`` (see ``interp.stats.dense.head_summary``)."""
    batch = tokenize(model, prompts)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    causal = is_causal(model)
    totals: dict[int, dict[str, torch.Tensor]] = {}
    starts = range(0, len(prompts), batch_size)
    for s in tqdm(starts, desc="scan: prompt batches", disable=not progress):
        sub = batch.rows(s, s + batch_size)
        run = run_heads(model, sub, hooks=["pattern"], batch_size=batch_size)
        for layer in range(n_layers):
            sums = head_summary(run.pattern(layer), sub.lengths, causal=causal)
            acc = totals.setdefault(layer, {k: torch.zeros(n_heads) for k in sums})
            for k, v in sums.items():
                acc[k] += v.cpu()
    n_rep = n_heads // n_kv_heads(model)
    rows = []
    for layer in range(n_layers):
        t = totals[layer]
        for h in range(n_heads):
            row: dict[str, float | int] = {"layer": layer, "head": h, "kv_head": h // n_rep}
            for k in QUERY_MEANS:
                row[k] = float(t[k][h] / t["n_queries"][h])
            row["sink_score_0"] = float(t["sink_score_0"][h] / t["n_prompts"][h])
            row["n_prompts"] = len(prompts)
            row["n_tokens"] = int(sum(batch.lengths))
            rows.append(row)
    return pd.DataFrame(rows)
