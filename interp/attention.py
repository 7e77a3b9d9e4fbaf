"""Per-head activations by transformer-lens hook name: attention patterns and q/k/v/z.

Usage::

    model = interp.load_model("smollm2-135m")
    run = interp.run_heads(model, ["The cat sat", "A dog ran far"], hooks=["pattern", "k"])
    run["pattern", 3]         # [batch, head, query, key] of layer 3 (also run.pattern(3))
    run["k", 3]               # [batch, pos, head, d_head], kv heads expanded per query head
    run["blocks.3.attn.hook_pattern"]  # full transformer-lens names work too

Only the hooks asked for are cached. Grouped-query attention (SmolLM2: 9 query heads share
3 key/value heads) is expanded so that every head index is a query head: query head ``h`` reads
key/value head ``h // (n_heads // n_kv_heads)``, as in Hugging Face's ``repeat_kv``. The expanded
k/v/rot_k are stored as ``blocks.3.attn.hook_k.per_query_head`` (``interp.hook_names``), so they
cannot be mistaken for the bridge's own 3-head tensors.
Positions past a prompt's length are padding and are set to 0 in every returned tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import no_type_check

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.hook_names import FULL_NAME, HEAD_HOOKS, act_name, expanded_name, is_kv
from interp.models.info import n_kv_heads
from interp.tokens import TokenBatch, as_batch


@dataclass
class HeadActivations:
    """Result of ``run_heads``: tokens plus the requested activations, by full hook name."""

    batch: TokenBatch
    acts: dict[str, Tensor] = field(default_factory=dict)
    logits: Float[Tensor, "batch pos vocab"] | None = None

    @property
    def tokens(self) -> Int[Tensor, "batch pos"]:
        return self.batch.tokens

    @property
    def lengths(self) -> list[int]:
        return self.batch.lengths

    def __getitem__(self, name: str | tuple[str, int]) -> Tensor:
        """``run["pattern", 3]`` (short name, layer) or a full hook name."""
        if isinstance(name, tuple):
            hook, layer = name
            name = expanded_name(act_name(hook, layer))
        if name not in self.acts:
            if is_kv(name) and expanded_name(name) in self.acts:
                raise KeyError(
                    f"{name!r} is the bridge's per-key/value-head tensor; this run holds it "
                    f"expanded per query head as {expanded_name(name)!r} (or use run[short, layer])"
                )
            raise KeyError(f"{name!r} was not cached; cached: {sorted(self.acts)}")
        return self.acts[name]

    def keys(self) -> list[str]:
        return list(self.acts)

    def __repr__(self) -> str:
        """One short paragraph (hooks, layers, shapes, lengths), never whole tensors."""
        by_hook: dict[str, list[int]] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for name, value in self.acts.items():
            parts = name.split(".")
            layer = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1
            short = parts[-1].removeprefix("hook_")
            by_hook.setdefault(short, []).append(layer)
            shapes.setdefault(short, tuple(value.shape))
        hooks = ", ".join(
            f"{h} {_layer_range(layers)} {list(shapes[h])}" for h, layers in by_hook.items()
        )
        logits = "none" if self.logits is None else str(list(self.logits.shape))
        return (
            f"HeadActivations({len(self.lengths)} prompt(s), lengths {self.lengths}; "
            f"{hooks or 'no hooks'}; logits {logits})"
        )

    def get(self, hook: str, layer: int) -> Tensor:
        """Activation of short hook name ``hook`` (see ``interp.hook_names``) at ``layer``."""
        return self[hook, layer]

    def pattern(self, layer: int) -> Float[Tensor, "batch head query key"]:
        """Post-softmax attention of every head of ``layer``; rows over real keys sum to 1."""
        return self.get("pattern", layer)


def _layer_range(layers: list[int]) -> str:
    """'layers 0-29' for a contiguous run, else 'layers [0, 3, 7]'."""
    layers = sorted(set(layers))
    if layers == [-1]:
        return ""
    if layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 1:
        return f"layers {layers[0]}-{layers[-1]}"
    return f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}"


def resolve_hooks(
    model: TransformerBridge, hooks: Sequence[str], layers: Sequence[int] | None
) -> list[str]:
    """Full hook names for short names x layers, or full names checked against the model."""
    n_layers = int(model.cfg.n_layers)
    if layers is None:
        layers = range(n_layers)
    layers = list(layers)
    bad = [layer for layer in layers if not 0 <= int(layer) < n_layers]
    if bad:
        raise InputError(f"layers {bad} out of range: the model has layers 0..{n_layers - 1}")
    names: list[str] = []
    for hook in hooks:
        if hook in HEAD_HOOKS:
            names += [act_name(hook, layer) for layer in layers]
        elif FULL_NAME.match(hook):
            names.append(hook)
        else:
            raise InputError(
                f"unknown hook {hook!r}: use a short name ({', '.join(HEAD_HOOKS)}) or a full "
                "transformer-lens name such as 'blocks.0.attn.hook_pattern'"
            )
    missing = [n for n in names if n not in model.hook_dict]
    if missing:
        raise InputError(f"this model has no hook(s) {missing[:4]} (e.g. rot_q needs rotary)")
    return list(dict.fromkeys(names))


def _expand_kv(x: Tensor, n_rep: int) -> Tensor:
    """[batch, pos, kv_head, d] -> [batch, pos, kv_head * n_rep, d] (query head h <- h // n_rep)."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=2)


def _clean(name: str, x: Tensor, mask: Tensor, n_rep: int) -> Tensor:
    """Expand GQA heads and zero every entry that involves a padding position."""
    x = x.detach()
    keep = mask.to(device=x.device, dtype=torch.bool)
    if name.endswith(("hook_pattern", "hook_attn_scores")):  # [b, h, q, k]
        pair = keep[:, None, :, None] & keep[:, None, None, :]
        return x.masked_fill(~pair, 0.0)
    if is_kv(name):
        x = _expand_kv(x, n_rep)
    if x.dim() == 4:  # [b, pos, h, d]
        return x.masked_fill(~keep[:, :, None, None], 0.0)
    return x


def _pad_to(x: Tensor, n: int, dims: tuple[int, ...]) -> Tensor:
    pad: list[int] = []
    for d in reversed(range(x.dim())):
        pad += [0, n - x.shape[d] if d in dims else 0]
    return torch.nn.functional.pad(x, pad)


def _pos_dims(name: str) -> tuple[int, ...]:
    return (2, 3) if name.endswith(("hook_pattern", "hook_attn_scores")) else (1,)


@no_type_check  # validates user input itself (clear InputError)
def run_heads(
    model: TransformerBridge,
    prompts: str | Sequence[str] | TokenBatch,
    *,
    hooks: Sequence[str] = ("pattern",),
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    return_logits: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> HeadActivations:
    """Run prompts through ``model`` (batched, right-padded) and cache per-head activations.

    Args:
        model: a bridge from ``interp.load_model``.
        prompts: a string, a list of strings, or a ``TokenBatch``.
        hooks: short names (``pattern``, ``attn_scores``, ``q``, ``k``, ``v``, ``rot_q``,
            ``rot_k``, ``z``) applied to every layer in ``layers``, or full hook names.
        layers: layers for short names (default all). Without ``return_logits`` the run
            stops after the last layer needed.
        batch_size: prompts per forward pass.
        return_logits: also return logits ``[batch, pos, vocab]``.
        device: where cached tensors are stored.
        progress: show a progress bar over batches.

    Returns:
        ``HeadActivations``; patterns ``[batch, head, query, key]``, q/k/v/z
        ``[batch, pos, head, d_head]`` with key/value heads expanded to query heads (k, v,
        rot_k under ``<name>.per_query_head``; ``run["k", layer]`` finds them).
    """
    batch = as_batch(model, prompts)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    names = resolve_hooks(model, hooks, layers)
    wanted = set(names)
    n_rep = int(model.cfg.n_heads) // n_kv_heads(model)
    last = max(int(FULL_NAME.match(n).group(1)) for n in names) if names else -1
    stop = None if return_logits or last + 1 >= model.cfg.n_layers else last + 1
    n_total = batch.tokens.shape[1]
    chunks: dict[str, list[Tensor]] = {n: [] for n in names}
    logits: list[Tensor] = []
    model_device = next(model.original_model.parameters()).device
    starts = range(0, len(batch.lengths), batch_size)
    for s in tqdm(starts, desc="batches", disable=not progress):
        width = max(batch.lengths[s : s + batch_size])
        toks = batch.tokens[s : s + batch_size, :width].to(model_device)
        mask = batch.attention_mask[s : s + batch_size, :width].to(model_device)
        with torch.no_grad():
            out, cache = model.run_with_cache(
                toks,
                attention_mask=mask,
                names_filter=lambda n: n in wanted,
                stop_at_layer=stop,
                return_cache_object=False,
            )
        for n in names:
            x = _clean(n, cache[n], mask, n_rep)
            chunks[n].append(_pad_to(x, n_total, _pos_dims(n)).to(device))
        if return_logits:
            logits.append(_pad_to(out.detach(), n_total, (1,)).to(device))
    acts = {expanded_name(n): torch.cat(c) for n, c in chunks.items()}
    return HeadActivations(batch, acts, torch.cat(logits) if return_logits else None)
