"""TopK sparse autoencoders (Gao et al. 2024, "Scaling and evaluating sparse autoencoders",
arXiv 2406.04093) in the SAELens layout, for attention outputs (Kissane et al. 2024,
"Interpreting Attention Layer Outputs with Sparse Autoencoders": one SAE per layer on the
concatenated ``hook_z``, [n_heads * d_head]).

Forward as SAELens' ``topk`` architecture: pre = (x - b_dec) W_enc + b_enc, keep the k largest
pre-activations of each input and apply ReLU to them (the rest 0), x_hat = f W_dec + b_dec.

Training as Gao et al.: W_dec rows (one dictionary vector per latent) unit norm, W_enc
initialised as W_dec^T, b_dec at the data mean (their geometric median, approximated by the
mean), loss = MSE normalised by the data's variance + 1/32 x the AuxK loss (the k_aux = d_in / 2
largest pre-activations of the latents dead for ``dead_after`` inputs reconstruct the residual
error), Adam, decoder rows renormalised after every step (their gradient projection is not
applied; the renormalisation keeps the same constraint).

Files: ``cfg.json`` (SAELens ``SAEConfig`` fields: architecture ``topk``, activation_fn_kwargs
{"k": k}, hook_name ``blocks.L.attn.hook_z``) + ``sae_weights.safetensors`` (``W_enc`` [d_in,
d_sae], ``W_dec`` [d_sae, d_in], ``b_enc``, ``b_dec``). ``load_sae_folder`` reads such folders
written by SAELens too (``topk``, ``standard`` = ReLU, ``jumprelu`` with its ``threshold``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import trange

from interp.errors import InputError
from interp.report import write_json
from interp.shapes import Float
from interp.threads import threads_for

ARCHITECTURES = ("topk", "standard", "jumprelu")


class TopKSAE(nn.Module):
    """x [..., d_in] -> f [..., d_sae] (``architecture``: topk keeps k, standard = ReLU,
    jumprelu keeps pre > threshold) -> x_hat [..., d_in]."""

    def __init__(
        self, d_in: int, d_sae: int, k: int | None = 32, architecture: str = "topk"
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if architecture == "topk" and not (k and 1 <= k <= d_sae):
            raise InputError(f"k must be in 1..d_sae = {d_sae}, got {k}")
        self.d_in, self.d_sae, self.k, self.architecture = d_in, d_sae, k, architecture
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.threshold = nn.Parameter(torch.zeros(d_sae), requires_grad=False)
        self.cfg: dict[str, Any] = {}

    def pre_activations(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return (x.float() - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            return pre * (pre > self.threshold)
        top = pre.topk(int(self.k or 0), dim=-1)  # topk: k is set (checked in __init__)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return self.activate(self.pre_activations(x))

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.encode(x)
        return f, self.decode(f)

    @torch.no_grad()
    def normalise(self) -> None:
        """Unit-norm dictionary vectors (rows of W_dec)."""
        self.W_dec.copy_(nn.functional.normalize(self.W_dec, dim=1))

    def head_shares(self, n_heads: int) -> Float[Tensor, "d_sae n_heads"]:
        """Each latent's share of its decoder vector per head block (the input is the heads'
        concatenated z: head h owns coordinates h * d_head .. (h + 1) * d_head - 1): squared
        norm of the block over the squared norm of the row; rows sum to 1."""
        if self.d_in % n_heads:
            raise InputError(f"d_in {self.d_in} is not a multiple of n_heads {n_heads}")
        blocks = self.W_dec.detach().float().reshape(self.d_sae, n_heads, -1).pow(2).sum(-1)
        return blocks / blocks.sum(-1, keepdim=True).clamp_min(1e-30)


def train_topk_sae(
    x: Float[Tensor, "n d_in"],
    *,
    d_sae: int,
    k: int = 32,
    lr: float = 1e-3,
    epochs: int = 20,
    batch_size: int = 1024,
    aux_coefficient: float = 1 / 32,
    dead_after: int = 10_000,
    seed: int = 0,
    progress: bool = False,
) -> tuple[TopKSAE, dict[str, float]]:
    """Train on ``x`` (rows: one token's concatenated z); returns the SAE and its final
    normalised MSE (fraction of variance unexplained), dead-latent share and L0."""
    if x.dim() != 2 or len(x) < 2:
        raise InputError(f"SAE training data must be [n >= 2, d_in], got {tuple(x.shape)}")
    if not 1 <= k <= d_sae:
        raise InputError(f"k must be in 1..d_sae = {d_sae}, got {k}")
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    d_in = x.shape[1]
    sae = TopKSAE(d_in, d_sae, k)
    with torch.no_grad():
        sae.W_dec.copy_(nn.functional.normalize(torch.randn(d_sae, d_in, generator=g), dim=1))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(x.mean(0))
    variance = float((x - x.mean(0)).pow(2).sum(-1).mean())
    opt = torch.optim.Adam([p for p in sae.parameters() if p.requires_grad], lr=lr)
    since_fired = torch.zeros(d_sae)
    k_aux = max(1, min(d_in // 2, d_sae))
    with threads_for(batch_size * d_in * d_sae):
        for _ in trange(epochs, desc="TopK SAE", disable=not progress):
            for idx in torch.randperm(len(x), generator=g).split(batch_size):
                xb = x[idx]
                pre = sae.pre_activations(xb)
                f = sae.activate(pre)
                x_hat = sae.decode(f)
                err = xb - x_hat
                loss = err.pow(2).sum(-1).mean() / variance
                fired = (f > 0).any(0)
                since_fired = torch.where(fired, 0.0, since_fired + len(xb))
                dead = since_fired >= dead_after
                if aux_coefficient and bool(dead.any()):
                    # AuxK: the dead latents' top pre-activations reconstruct the error
                    aux_pre = pre.masked_fill(~dead, -math.inf)
                    kk = min(k_aux, int(dead.sum()))
                    top = aux_pre.topk(kk, dim=-1)
                    aux_f = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
                    aux_hat = aux_f @ sae.W_dec
                    aux = (err.detach() - aux_hat).pow(2).sum(-1).mean() / variance
                    loss = loss + aux_coefficient * aux.nan_to_num(0.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sae.normalise()
    with torch.no_grad():
        f, x_hat = sae(x)
        fvu = float((x - x_hat).pow(2).sum(-1).mean()) / variance
        stats = {
            "fvu": fvu,
            "dead_fraction": float(((f > 0).sum(0) == 0).float().mean()),
            "l0": float((f > 0).float().sum(-1).mean()),
            "n_train": len(x),
        }
    return sae, stats


def save_sae_folder(sae: TopKSAE, folder: Path, cfg: dict[str, Any] | None = None) -> Path:
    """``folder``/cfg.json + sae_weights.safetensors (SAELens layout; written atomically:
    the weights first, the cfg last, so a folder with a cfg.json is complete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "W_enc": sae.W_enc.detach().contiguous(),
        "W_dec": sae.W_dec.detach().contiguous(),
        "b_enc": sae.b_enc.detach().clone(),
        "b_dec": sae.b_dec.detach().clone(),
    }
    if sae.architecture == "jumprelu":
        tensors["threshold"] = sae.threshold.detach().clone()
    tmp = folder / "sae_weights.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(folder / "sae_weights.safetensors")
    full = {
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "activation_fn_str": "topk" if sae.architecture == "topk" else "relu",
        "activation_fn_kwargs": {"k": sae.k} if sae.architecture == "topk" else {},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",
        "dtype": "float32",
        "device": "cpu",
        "hook_head_index": None,
        "prepend_bos": True,
        "dataset_trust_remote_code": False,
        "sae_lens_training_version": None,
        **sae.cfg,
        **(cfg or {}),
    }
    write_json(full, folder / "cfg.json")
    return folder


def load_sae_folder(folder: Path) -> TopKSAE:
    """An SAE saved in the SAELens layout (by us or by SAELens): cfg.json +
    sae_weights.safetensors; architectures topk, standard (ReLU) and jumprelu."""
    folder = Path(folder)
    cfg_path, weights = folder / "cfg.json", folder / "sae_weights.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise InputError(
            f"{folder} has no cfg.json + sae_weights.safetensors (the SAELens layout); train "
            "one with `interp attn-saes` or point at a SAELens folder"
        )
    try:
        cfg = json.loads(cfg_path.read_text())
        t = load_file(str(weights))
    except (json.JSONDecodeError, OSError, RuntimeError) as e:
        raise InputError(f"{folder}: unreadable SAE files ({e}); retrain or re-download") from e
    arch = cfg.get("architecture", "standard")
    if arch not in ARCHITECTURES:
        raise InputError(f"{folder}: SAE architecture {arch!r} is not supported ({ARCHITECTURES})")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    k = (cfg.get("activation_fn_kwargs") or {}).get("k") if arch == "topk" else None
    want = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    for name, shape in want.items():
        if name not in t or tuple(t[name].shape) != shape:
            got = tuple(t[name].shape) if name in t else "missing"
            raise InputError(f"{folder}: {name} should be {shape} by its cfg.json, got {got}")
    sae = TopKSAE(d_in, d_sae, k, arch)
    with torch.no_grad():
        for name in want:
            getattr(sae, name).copy_(t[name].float())
        if arch == "jumprelu":
            sae.threshold.copy_(t["threshold"].float())
    if not cfg.get("apply_b_dec_to_input", True):  # x is then encoded without subtracting b_dec
        with torch.no_grad():
            sae.b_enc.add_(sae.b_dec @ sae.W_enc)
    sae.cfg = {key: cfg[key] for key in ("hook_name", "hook_layer", "model_name") if key in cfg}
    return sae
