"""Head ablations as context managers over a hooked model (transformer-lens hooks).

``with ablate(model, heads=[(9, 3)], kind="mean", reference=prompts): model(tokens)``

- ``zero``: the head's output ``hook_z`` (its attention-weighted values, before W_O) is set to 0;
- ``mean``: set to its mean over the real tokens of ``reference`` prompts (pooled over positions,
  so prompts of any length work);
- ``resample``: set to the head's ``hook_z`` on ``corrupted`` prompts (same batch and length as
  the prompts being run, position by position);
- ``uniform``: the head attends uniformly over its visible context (pre-softmax scores 0; see
  ``interp.ablation.uniform``).

Only the named heads change; every other head's activations are bit-identical (tested).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.uniform import check_heads, uniform_attention_hooks
from interp.errors import InputError
from interp.hook_names import act_name
from interp.tokens import as_batch

KINDS = ("zero", "mean", "resample", "uniform")
Head = tuple[int, int]


@torch.no_grad()
def cache_z(model: TransformerBridge, prompts, layers: Iterable[int]) -> dict[int, torch.Tensor]:
    """``hook_z`` [batch, pos, head, d_head] of ``layers`` on ``prompts`` (padding zeroed)."""
    batch = as_batch(model, prompts)
    names = {act_name("z", la): la for la in set(layers)}
    _, cache = model.run_with_cache(
        batch.tokens,
        attention_mask=batch.attention_mask,
        names_filter=lambda n: n in names,
        return_cache_object=False,
    )
    keep = batch.attention_mask.bool()[:, :, None, None]
    return {la: cache[n].detach() * keep for n, la in names.items()}


@torch.no_grad()
def head_writes(
    model: TransformerBridge, prompts, weights: Float[Tensor, "batch pos"]
) -> Float[Tensor, "batch layer_head d_model"]:
    """Each head's write to the residual stream (``hook_z`` @ W_O), weighted over positions by
    ``weights`` (padding and masked positions have z zeroed), heads ordered layer by layer."""
    batch = as_batch(model, prompts)
    n_layers = int(model.cfg.n_layers)
    z_all = cache_z(model, batch, range(n_layers))  # [b, pos, head, d_head]
    w_o = model.W_O.detach().float()  # [layer, head, d_head, d_model]
    w = weights.float()
    out = [
        torch.einsum("bhd,hdm->bhm", torch.einsum("bp,bphd->bhd", w, z_all[la].float()), w_o[la])
        for la in range(n_layers)
    ]
    return torch.cat(out, dim=1)


def head_means(
    model: TransformerBridge, reference, heads: Sequence[Head]
) -> dict[Head, torch.Tensor]:
    """Mean ``hook_z`` vector of each head over the real tokens of ``reference``."""
    batch = as_batch(model, reference)
    z = cache_z(model, batch, [la for la, _ in heads])
    count = batch.attention_mask.sum()
    return {(la, h): z[la][:, :, h].sum((0, 1)) / count for la, h in heads}


def ablation_hooks(
    model: TransformerBridge,
    heads: Iterable[Head],
    kind: str = "zero",
    *,
    reference=None,
    corrupted=None,
    means: dict[Head, torch.Tensor] | None = None,
) -> list[tuple[str, Callable[..., Any]]]:
    """The forward hooks of ``ablate`` (to combine with other hooks).

    ``means``: precomputed ``head_means`` (any superset of ``heads``) instead of ``reference``.
    """
    heads = check_heads(model, heads)
    if kind not in KINDS:
        raise InputError(f"unknown ablation {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "uniform":
        return uniform_attention_hooks(model, heads)
    if kind == "mean" and reference is None and means is None:
        raise InputError("mean ablation needs reference prompts (reference=...) or means=...")
    if kind == "resample" and corrupted is None:
        raise InputError("resample ablation needs corrupted prompts (corrupted=...)")
    by_layer: dict[int, list[int]] = defaultdict(list)
    for la, h in heads:
        by_layer[la].append(h)
    mean_of: dict[Head, torch.Tensor] = {}
    if kind == "mean":
        mean_of = means if means is not None else head_means(model, reference, heads)
        if not set(heads) <= set(mean_of):
            raise InputError(f"means= lacks heads {sorted(set(heads) - set(mean_of))[:4]}")
    source = cache_z(model, corrupted, by_layer) if kind == "resample" else {}

    def make(layer: int, idx: list[int]):
        def hook(z: torch.Tensor, hook) -> torch.Tensor:  # [batch, pos, head, d_head]
            z = z.clone()
            for h in idx:
                if kind == "zero":
                    z[:, :, h] = 0.0
                elif kind == "mean":
                    z[:, :, h] = mean_of[(layer, h)].to(z)
                else:
                    src = source[layer]
                    if src.shape[:2] != z.shape[:2]:
                        raise InputError(
                            "resample ablation: corrupted prompts give shape "
                            f"{tuple(src.shape[:2])} but the run has {tuple(z.shape[:2])}; use "
                            "prompts of the same batch size and token length"
                        )
                    z[:, :, h] = src[:, :, h].to(z)
            return z

        return hook

    return [(act_name("z", la), make(la, idx)) for la, idx in by_layer.items()]


@contextmanager
def ablate(
    model: TransformerBridge,
    heads: Iterable[Head],
    kind: str = "zero",
    *,
    reference=None,
    corrupted=None,
) -> Iterator[TransformerBridge]:
    """Context manager: inside it, every forward pass of ``model`` runs with ``heads`` ablated."""
    hooks = ablation_hooks(model, heads, kind, reference=reference, corrupted=corrupted)
    with model.hooks(fwd_hooks=hooks):
        yield model
