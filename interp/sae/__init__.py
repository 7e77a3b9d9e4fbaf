"""Discrete-code sparse autoencoders for circuit discovery (O'Neill & Bui 2024)."""

from interp.sae.codes import edge_scores, node_scores
from interp.sae.model import DiscreteCodeSAE, load_sae, sae_loss, save_sae, train_sae

__all__ = [
    "DiscreteCodeSAE",
    "edge_scores",
    "load_sae",
    "node_scores",
    "sae_loss",
    "save_sae",
    "train_sae",
]
