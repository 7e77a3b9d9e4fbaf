"""The discrete-code SAE of O'Neill & Bui 2024 (arXiv 2405.12522; code charlieoneill11/
sae-circuits, src/sae.py and src/train.py).

One SAE shared by all heads: x -> ReLU(W_enc (x - b) + b_enc) -> W_dec f + b, as the official
code:
- tied pre-encoder / post-decoder bias b initialised at zeros (the official ``SparseAutoencoder``
  is built with ``geometric_median_dataset=None``), encoder bias b_enc initialised like
  ``nn.Linear`` (uniform in +-1/sqrt(d_in));
- loss = MSE (mean over every element) + lambda * mean over examples of the L1 norm SUMMED over
  latents (official ``loss_fn``: ``torch.mean(torch.norm(f, p=1, dim=1))``), lambda 0.02, 200
  latents, Adam lr 1e-3, 500 full-batch epochs;
- unit norms as the official ``ConstrainedUnitNormLinear``, which normalises each weight matrix
  along its last dim: encoder rows (one per latent) and, for the decoder [d_in, d_sae], one row
  per residual coordinate across latents (``decoder_norm="official"``). Most SAEs (SAELens,
  Anthropic) instead give each latent's dictionary vector unit norm; ``decoder_norm="latent"``
  does that. The official code keeps the norms with a gradient-projection hook plus a
  renormalisation in every forward; we renormalise after every Adam step (the same constraint).

Saved in the SAELens layout: ``sae_weights.safetensors`` (``W_enc`` [d_in, d_sae], ``W_dec``
[d_sae, d_in], ``b_enc`` [d_sae], ``b_dec`` [d_in]) + ``cfg.json`` (``apply_b_dec_to_input`` true:
b_dec is the tied pre-bias).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import trange

from interp.errors import InputError
from interp.report import write_json
from interp.threads import threads_for

DECODER_NORMS = ("official", "latent")


class DiscreteCodeSAE(nn.Module):
    def __init__(self, d_in: int, d_sae: int = 200, decoder_norm: str = "official") -> None:
        super().__init__()
        if decoder_norm not in DECODER_NORMS:
            raise InputError(f"decoder_norm must be one of {DECODER_NORMS}, got {decoder_norm!r}")
        self.d_in, self.d_sae, self.decoder_norm = d_in, d_sae, decoder_norm
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.W_enc = nn.Parameter(torch.randn(d_sae, d_in))
        bound = 1 / d_in**0.5
        self.b_enc = nn.Parameter(torch.empty(d_sae).uniform_(-bound, bound))
        self.W_dec = nn.Parameter(torch.randn(d_in, d_sae))
        self.normalise()

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations [..., d_sae]."""
        return torch.relu((x - self.b_dec) @ self.W_enc.T + self.b_enc)

    def decode(self, f: Tensor) -> Tensor:
        return f @ self.W_dec.T + self.b_dec

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.encode(x)
        return f, self.decode(f)

    def codes(self, x: Tensor) -> Tensor:
        """Discrete code of each input: the index of its largest latent."""
        with torch.no_grad():
            return self.encode(x).argmax(-1)

    @torch.no_grad()
    def normalise(self) -> None:
        """Unit-norm encoder rows; decoder rows (official) or decoder columns (per latent)."""
        self.W_enc.copy_(nn.functional.normalize(self.W_enc, dim=1))
        dim = 1 if self.decoder_norm == "official" else 0
        self.W_dec.copy_(nn.functional.normalize(self.W_dec, dim=dim))


def sae_loss(x: Tensor, f: Tensor, x_hat: Tensor, l1: float) -> Tensor:
    """Official ``loss_fn``: MSE (mean over all elements) + l1 * mean over examples of the L1
    norm of the latents summed over latents. ``x``, ``x_hat`` [n, d_in]; ``f`` [n, d_sae]."""
    return nn.functional.mse_loss(x_hat, x) + l1 * f.abs().sum(-1).mean()


def train_sae(
    x: Tensor,
    *,
    d_sae: int = 200,
    l1: float = 0.02,
    lr: float = 1e-3,
    epochs: int = 500,
    seed: int = 0,
    decoder_norm: str = "official",
    progress: bool = False,
) -> tuple[DiscreteCodeSAE, list[float]]:
    """Full-batch training on ``x`` [n, d_in]; returns the SAE and the loss per epoch."""
    if x.dim() != 2 or len(x) < 2:
        raise InputError(f"SAE training data must be [n >= 2, d_in], got {tuple(x.shape)}")
    torch.manual_seed(seed)
    x = x.float()
    sae = DiscreteCodeSAE(x.shape[1], d_sae, decoder_norm)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    losses = []
    with threads_for(x.shape[0] * x.shape[1] * d_sae):  # small ops: one thread is faster
        for _ in trange(epochs, desc="SAE", disable=not progress):
            f, x_hat = sae(x)
            loss = sae_loss(x, f, x_hat, l1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sae.normalise()
            losses.append(float(loss.detach()))
    return sae, losses


def save_sae(sae: DiscreteCodeSAE, folder: Path, extra: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "W_enc": sae.W_enc.detach().T.contiguous(),
        "W_dec": sae.W_dec.detach().T.contiguous(),
        "b_enc": sae.b_enc.detach().clone(),
        "b_dec": sae.b_dec.detach().clone(),
    }
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    cfg = {
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "architecture": "standard",
        "activation_fn_str": "relu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "interp_kind": "discrete_code_sae",
        "interp_decoder_norm": sae.decoder_norm,
        **(extra or {}),
    }
    write_json(cfg, folder / "cfg.json")
    return folder


def load_sae(folder: Path) -> DiscreteCodeSAE:
    folder = Path(folder)
    if not (folder / "cfg.json").is_file() or not (folder / "sae_weights.safetensors").is_file():
        raise InputError(f"{folder} has no cfg.json + sae_weights.safetensors (SAELens layout)")
    cfg = json.loads((folder / "cfg.json").read_text())
    t = load_file(str(folder / "sae_weights.safetensors"))
    sae = DiscreteCodeSAE(cfg["d_in"], cfg["d_sae"], cfg.get("interp_decoder_norm", "latent"))
    with torch.no_grad():
        sae.W_enc.copy_(t["W_enc"].T)
        sae.W_dec.copy_(t["W_dec"].T)
        sae.b_enc.copy_(t["b_enc"])
        sae.b_dec.copy_(t["b_dec"])
    return sae
