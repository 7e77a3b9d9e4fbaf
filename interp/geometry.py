"""Query-key geometry of attention heads: the angles of the pairs a head actually attends to.

For every visible (query i, key j) pair of a head, ``cos(q_i, k_j)`` (post-rotary q and k when
the model has rotary embeddings: the vectors whose dot product is scored) and the head's weight
A_ij. The attention-weighted distribution of cos is where the head "looks" geometrically: for
dot-product attention it sits at cos > 0 (parallel pairs); Gros (arXiv 2407.18601, docs/methods.md
section 5) argues expressive attention also uses antiparallel pairs (cos < 0), since (q.k)^2
does not see the sign.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.attention import run_heads
from interp.hook_names import act_name
from interp.models.info import is_causal

#: |cos| above this counts as (anti)parallel in ``angle_summary``
ALIGNED = 0.5


def qk_cosines(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """cos(q_i, k_j) for q [..., query, d], k [..., key, d] -> [..., query, key]."""
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    kn = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return qn @ kn.transpose(-1, -2)


@torch.no_grad()
def attended_pairs(
    model: TransformerBridge, prompts: Sequence[str], layers: Sequence[int] | None = None
) -> pd.DataFrame:
    """One row per (prompt, layer, head, query, key) visible pair: ``cos`` and ``weight``."""
    layers = list(range(int(model.cfg.n_layers))) if layers is None else list(layers)
    rotary = act_name("rot_q", layers[0]) in model.hook_dict
    qk = ("rot_q", "rot_k") if rotary else ("q", "k")
    run = run_heads(model, list(prompts), hooks=["pattern", *qk], layers=layers)
    causal = is_causal(model)
    frames = []
    for layer in layers:
        q = run[qk[0], layer].transpose(1, 2)  # [b, head, pos, d]
        k = run[qk[1], layer].transpose(1, 2)
        cos = qk_cosines(q, k)
        pat = run.pattern(layer)
        for b, n in enumerate(run.lengths):
            qi, ki = np.tril_indices(n) if causal else np.indices((n, n)).reshape(2, -1)
            for h in range(cos.shape[1]):
                frames.append(
                    pd.DataFrame(
                        {
                            "prompt": b,
                            "layer": layer,
                            "head": h,
                            "query": qi,
                            "key": ki,
                            "cos": cos[b, h, :n, :n].numpy()[qi, ki],
                            "weight": pat[b, h, :n, :n].numpy()[qi, ki],
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def angle_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per head: attention mass on parallel (cos > 0.5), antiparallel (cos < -0.5) and
    orthogonal-ish pairs, and the attention-weighted mean cos (weights sum to 1 per query, so
    masses are averaged over queries)."""

    def one(g: pd.DataFrame) -> pd.Series:
        w = g["weight"] / g["weight"].sum()
        return pd.Series(
            {
                "parallel_mass": float(w[g["cos"] > ALIGNED].sum()),
                "antiparallel_mass": float(w[g["cos"] < -ALIGNED].sum()),
                "orthogonal_mass": float(w[g["cos"].abs() <= ALIGNED].sum()),
                "mean_cos": float((w * g["cos"]).sum()),
                "mean_abs_cos": float((w * g["cos"].abs()).sum()),
            }
        )

    return pairs.groupby(["layer", "head"]).apply(one, include_groups=False).reset_index()
