"""Attention-output SAEs (Kissane et al. 2024): one TopK SAE per layer on the concatenated
``hook_z`` [n_heads * d_head], trained on the text the package ships; each latent is attributed
to heads by its decoder-norm share per head block, and a metric's change under an intervention
is attributed to latents by attribution patching (Marks et al. 2024, "Sparse feature circuits",
arXiv 2403.19647) and summed per head.

Attribution: with the SAE spliced into ``hook_z`` as z = W_dec^T f(z) + b_dec + e (the error e
held at its clean value), the effect of moving z to z + dz is estimated per latent i as
IE_i = sum over inputs and positions of (f_i(z + dz) - f_i(z)) (W_dec[i] . dm/dz): one forward
and one backward pass for every latent of every layer. A head's score is sum_i IE_i x share of
latent i in that head. ``dz`` comes from the family's intervention on the clean run: a score
edit on every head (dz = (softmax(edit(scores)) - pattern) v per head, the layers below clean)
or activation patching from a corrupted run (dz = z_corrupted - z).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.hook_names import act_name
from interp.sae.topk import TopKSAE, load_sae_folder, save_sae_folder, train_topk_sae
from interp.shapes import Float
from interp.tokens import TokenBatch

Metric = Callable[[Tensor], Tensor]


def layer_folder(root: Path, layer: int) -> Path:
    """A layer's SAE folder: named by the hook it encodes (blocks.L.attn.hook_z)."""
    return Path(root) / act_name("z", layer)


@torch.no_grad()
def collect_z(
    model: TransformerBridge, batch: TokenBatch, layers: Sequence[int], skip_first: bool = True
) -> dict[int, Float[Tensor, "tokens d_in"]]:
    """layer -> the concatenated ``hook_z`` of every real token of ``batch`` (position 0, the
    sink token whose z is an outlier, left out when ``skip_first``)."""
    names = {act_name("z", la): la for la in layers}
    keep = batch.attention_mask.bool().clone()
    if skip_first:
        keep[:, 0] = False
    out: dict[int, list[Tensor]] = {la: [] for la in layers}
    for s in range(0, len(batch.lengths), 8):
        sl = slice(s, s + 8)
        _, cache = model.run_with_cache(
            batch.tokens[sl], attention_mask=batch.attention_mask[sl],
            names_filter=lambda n: n in names, return_cache_object=False,
        )  # fmt: skip
        for name, la in names.items():
            z = cache[name].float()  # [b, pos, head, d_head]
            out[la].append(z.flatten(-2)[keep[sl]])
    return {la: torch.cat(v) for la, v in out.items()}


def train_attention_saes(
    model: TransformerBridge,
    layers: Sequence[int],
    out: Path,
    batch: TokenBatch,
    *,
    expansion: int = 4,
    k: int = 32,
    epochs: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> dict[int, dict[str, Any]]:
    """One TopK SAE per layer on ``batch``'s tokens, saved under ``out``/blocks.L.attn.hook_z
    (SAELens layout). A layer whose folder already holds an SAE of these settings is kept
    (resume); returns layer -> training statistics."""
    n_layers = int(model.cfg.n_layers)
    if not layers or any(not 0 <= la < n_layers for la in layers):
        raise InputError(f"layers must be in 0..{n_layers - 1}, got {list(layers)}")
    settings = {"expansion": expansion, "k": k, "epochs": epochs, "seed": seed,
                "n_train_tokens": int(batch.attention_mask.sum()) - len(batch.lengths)}  # fmt: skip
    found: dict[int, dict[str, Any]] = {}
    todo = []
    for la in layers:
        folder = layer_folder(out, la)
        if (folder / "cfg.json").is_file():
            cfg = json.loads((folder / "cfg.json").read_text())
            if cfg.get("interp_training") == settings and cfg.get("model_name") == str(
                model.cfg.model_name
            ):
                found[la] = cfg.get("interp_stats", {})
                continue
        todo.append(la)
    zs = collect_z(model, batch, todo) if todo else {}  # one forward for every layer
    for la in tqdm(todo, desc="attention-output SAEs", disable=not progress):
        x = zs.pop(la)
        d_in = x.shape[1]
        sae, stats = train_topk_sae(x, d_sae=expansion * d_in, k=k, epochs=epochs, seed=seed)
        cfg = {
            "model_name": str(model.cfg.model_name),
            "hook_name": act_name("z", la),
            "hook_layer": la,
            "context_size": int(batch.tokens.shape[1]),
            "dataset_path": "interp bundled text (interp.inputs)",
            "interp_kind": "attention_output_topk_sae",
            "interp_training": settings,
            "interp_stats": stats,
        }
        save_sae_folder(sae, layer_folder(out, la), cfg)
        found[la] = stats
    return found


def load_attention_saes(root: Path, model: TransformerBridge) -> dict[int, TopKSAE]:
    """Every layer SAE under ``root`` (folders blocks.L.attn.hook_z), checked against the
    model's hook_z width."""
    root = Path(root)
    d_in = int(model.cfg.n_heads) * int(model.cfg.d_head)
    saes = {}
    for la in range(int(model.cfg.n_layers)):
        folder = layer_folder(root, la)
        if folder.is_dir():
            sae = load_sae_folder(folder)
            if sae.d_in != d_in:
                raise InputError(
                    f"{folder}: d_in {sae.d_in} != this model's n_heads * d_head = {d_in}; the "
                    "SAEs belong to another model"
                )
            saes[la] = sae
    if not saes:
        raise InputError(
            f"{root} holds no attention-output SAE (folders blocks.L.attn.hook_z); train them "
            f"with `interp attn-saes MODEL --out {root}`"
        )
    return saes


Delta = Callable[[int, Tensor, dict], Tensor]


def pattern_delta(
    edit: Callable[[Tensor], Tensor], rows: Tensor | None = None
) -> tuple[list[str], Delta]:
    """(the activations dz needs kept: each layer's scores, pattern and v; dz of the score
    ``edit`` applied to every head of the layer with the layer's own inputs): z = pattern @ v
    per head."""

    def delta(layer: int, z: Tensor, store: dict) -> Tensor:
        a = store[("pattern", layer)]
        change = edit(store[("attn_scores", layer)]).float().softmax(-1) - a.float()
        if rows is not None:
            change = change * rows[:, None, :, None].to(change)
        v = store[("v", layer)].float()
        v = v.repeat_interleave(a.shape[1] // v.shape[2], dim=2)
        return torch.einsum("bhqk,bkhd->bqhd", change, v).to(z)

    return ["attn_scores", "pattern", "v"], delta


def feature_attribution(
    model: TransformerBridge,
    saes: dict[int, TopKSAE],
    tokens: Tensor,
    mask: Tensor | None,
    metric: Metric,
    delta: Delta,
    keep: Sequence[str] = (),
    steps: int = 1,
) -> tuple[Float[Tensor, "layer head"], dict[int, Tensor]]:
    """Per-head sums of the latents' attribution-patching effects (module docstring) and the
    per-latent effects (layer -> [d_sae]); layers without an SAE score 0.

    ``steps`` > 1: integrated gradients along the joint path on which every layer's z moves
    toward z + dz together (midpoint rule; dz recomputed live at each point, as
    ``interp.ablation.attribution`` does for heads), each point adding
    (f(z + dz) - f(z)) . (W_dec d metric / dz) / steps."""
    from interp.ablation.attribution import _midpoints

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    store: dict = {}
    leaves: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
    at = {"t": 0.0}

    def keeper(name: str, layer: int):
        def hook(x: Tensor, hook) -> None:
            store[(name, layer)] = x  # live: on the path dz moves with the layers below

        return hook

    hooks = [(act_name(name, la), keeper(name, la)) for name in keep for la in saes]

    def at_z(layer: int):
        def hook(z: Tensor, hook) -> Tensor:
            dz = delta(layer, z, store)
            d = torch.zeros_like(z, requires_grad=True)
            leaves[layer] = (z.detach(), dz.detach(), d)
            # dz keeps its graph: on the joint path every later layer's z is
            # (1 - t) z + t (z + dz) as functions of the layers below (as the head-level
            # attribution does), which completeness needs
            return z + at["t"] * dz + d

        return hook

    hooks += [(act_name("z", la), at_z(la)) for la in saes]
    heads = torch.zeros(n_layers, n_heads)
    per_latent = {la: torch.zeros(sae.d_sae) for la, sae in saes.items()}
    for t in _midpoints(steps):
        at["t"] = t
        with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
            out = metric(model(tokens, attention_mask=mask))
            out.backward()
        with torch.no_grad():
            for la, sae in saes.items():
                z, dz, d = leaves[la]
                grad = d.grad if d.grad is not None else torch.zeros_like(d)  # not reached
                g = grad.float().flatten(-2)  # [b, pos, d_in]
                if mask is not None:
                    g = g * mask[..., None].to(g)
                zf, zn = z.float().flatten(-2), (z + dz).float().flatten(-2)
                grad_f = g @ sae.W_dec.T  # [b, pos, d_sae]: d metric / d latent
                effect = ((sae.encode(zn) - sae.encode(zf)) * grad_f).sum((0, 1)) / steps
                per_latent[la] += effect
                heads[la] += effect @ sae.head_shares(n_heads)
    return heads, per_latent


def z_delta(corrupt: dict[int, Tensor]) -> Delta:
    """dz of activation patching from a corrupted run (``corrupt``: layer -> its hook_z)."""

    def delta(layer: int, z: Tensor, store: dict) -> Tensor:
        return corrupt[layer].to(z) - z  # live, as ``z_attribution``

    return delta
