"""Node and edge scores from discrete codes (O'Neill & Bui 2024; docs/methods.md section 4).

``codes`` [n_examples, n_heads]: the SAE code of each (example, head); ``positive`` [n_examples]
marks the examples the model answers. Node score of a head = number of codes it shows on positives
and never on negatives (optionally divided by its number of distinct codes). Edge score of a head
pair (h1, h2), h1 before h2 in the flattened layer-major order = number of code pairs (c1, c2)
seen together on positives and never on negatives.
"""

from __future__ import annotations

import numpy as np


def node_scores(codes: np.ndarray, positive: np.ndarray, normalise: bool = False) -> np.ndarray:
    codes, positive = np.asarray(codes), np.asarray(positive, dtype=bool)
    out = np.zeros(codes.shape[1])
    for h in range(codes.shape[1]):
        pos, neg = set(codes[positive, h].tolist()), set(codes[~positive, h].tolist())
        only = len(pos - neg)
        out[h] = only / len(pos | neg) if normalise else only
    return out


def edge_scores(codes: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """[n_heads, n_heads] upper-triangular matrix of positive-only code-pair counts."""
    codes, positive = np.asarray(codes), np.asarray(positive, dtype=bool)
    n = codes.shape[1]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            pos = set(zip(codes[positive, i].tolist(), codes[positive, j].tolist(), strict=True))
            neg = set(zip(codes[~positive, i].tolist(), codes[~positive, j].tolist(), strict=True))
            out[i, j] = len(pos - neg)
    return out
