"""Trivial head rankings that every head-finding score is reported beside (docs/methods.md,
"Evidence"). Each returns one score per head, heads ordered layer by layer ([layer * head]).

- ``layer_index``: the head's layer (deeper = higher); ``reversed`` ranks shallow heads first.
  Against a role planted in the last layer it is a perfect ranking and needs no model at all.
- ``write_norm``: the mean over real tokens of ||z_h W_O^h||, each head's write to the residual
  stream; no clean/corrupted contrast, so a method that merely follows activation size ties it.
- ``write_change``: per head, the mean over (clean, corrupted) pairs of ||x_c - x_k|| /
  (||x_c|| + ||x_k||) of its writes: the contrast without any SAE or patching.
- ``first_token_mass``: s_0 = sum_i A[i, 0] / N, the sink score of token 0 (mean over prompts).
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.tokens import TokenBatch


def layer_index(n_layers: int, n_heads: int, *, reversed: bool = False) -> np.ndarray:
    """[layer * head] each head's layer (or ``n_layers - 1 - layer`` when ``reversed``)."""
    layers = np.repeat(np.arange(n_layers, dtype=float), n_heads)
    return (n_layers - 1 - layers) if reversed else layers


@torch.no_grad()
def write_norm(model: TransformerBridge, batch: TokenBatch) -> np.ndarray:
    """[layer * head] mean over the real tokens of ``batch`` of ||z W_O|| per head."""
    from interp.ablation.heads import cache_z

    n_layers = int(model.cfg.n_layers)
    z_all = cache_z(model, batch, range(n_layers))  # [b, pos, head, d_head], padding zeroed
    w_o = model.W_O.detach().float()  # [layer, head, d_head, d_model]
    real = batch.attention_mask.bool()
    out = []
    for la in range(n_layers):
        writes = torch.einsum("bphd,hdm->bphm", z_all[la].float(), w_o[la])
        out.append(writes.norm(dim=-1)[real].mean(0))  # [head]
    return torch.cat(out).numpy()


def write_change(x: Float[Tensor, "example head d_model"], positive: np.ndarray) -> np.ndarray:
    """[head] the mean over (positive, paired negative) of ||x_pos - x_neg|| / (||x_pos|| +
    ||x_neg||), in [0, 1]. Positives and negatives come in the same order (example i's negative
    is the i-th negative)."""
    positive = np.asarray(positive, dtype=bool)
    pos, neg = x[torch.from_numpy(positive)], x[torch.from_numpy(~positive)]
    if len(pos) != len(neg):
        raise InputError("write_change needs one negative per positive, in the same order")
    num = (pos - neg).norm(dim=-1)
    den = pos.norm(dim=-1) + neg.norm(dim=-1)
    return (num / den.clamp_min(1e-12)).mean(0).numpy()


def first_token_mass(model: TransformerBridge, prompts: list[str]) -> np.ndarray:
    """[layer * head] s_0, mean over ``prompts`` (``interp.stats.heads.head_stats_table``)."""
    from interp.stats.heads import head_stats_table

    table = head_stats_table(model, prompts, progress=False)
    return table.sort_values(["layer", "head"]).sink_score_0.to_numpy()
