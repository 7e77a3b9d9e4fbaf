"""Activation patching and path patching of attention heads (transformer-lens hooks).

Direction (``direction=``): by default activations of a *corrupted* run are written into the
*clean* run ("noising": which heads are NECESSARY), and the effect of a patch is reported
normalised as (m_patched - m_clean) / (m_corrupt - m_clean): 0 = the patch changes nothing, 1 =
it moves the metric all the way to the corrupted run. ``direction="denoising"`` is
transformer-lens' ``patching`` convention: clean activations written into the corrupted run
(which heads are SUFFICIENT to restore the behaviour), reported as (m_patched - m_corrupt) /
(m_clean - m_corrupt): 1 = the patch restores the clean metric. Path patching is noising only.

Hooks that can be patched per head: ``z`` (head output before W_O), ``q``, ``pattern`` (per
query head), ``k``, ``v`` (per key/value head: with grouped-query attention one k/v head serves
several query heads, so "head" means kv head there). ``by="position"`` patches one (head,
position) at a time (position = query position for ``pattern``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.hook_names import act_name
from interp.models.info import n_kv_heads
from interp.tokens import TokenBatch

PATCHABLE = ("z", "q", "k", "v", "pattern")  # short hook names (interp.hook_names)
Metric = Callable[[torch.Tensor], float]


def _run(model, batch: TokenBatch, hooks=()) -> torch.Tensor:
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        return model(batch.tokens, attention_mask=batch.attention_mask)


def _cache(model, batch: TokenBatch, names: set[str]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        _, cache = model.run_with_cache(
            batch.tokens,
            attention_mask=batch.attention_mask,
            names_filter=lambda n: n in names,
            return_cache_object=False,
        )
    return {n: cache[n].detach() for n in names}


def _set(x: torch.Tensor, src: torch.Tensor, hook: str, head: int, pos: int | None) -> torch.Tensor:
    x = x.clone()
    if hook == "pattern":  # [batch, head, query, key]
        if pos is None:
            x[:, head] = src[:, head]
        else:
            x[:, head, pos] = src[:, head, pos]
    elif pos is None:  # [batch, pos, head, d]
        x[:, :, head] = src[:, :, head]
    else:
        x[:, pos, head] = src[:, pos, head]
    return x


def _check_pair(clean: TokenBatch, corrupted: TokenBatch) -> None:
    if clean.tokens.shape != corrupted.tokens.shape or clean.lengths != corrupted.lengths:
        raise InputError(
            "clean and corrupted prompts must have the same batch size and token lengths "
            f"(got {clean.lengths} and {corrupted.lengths}); build them from one template"
        )


def normalised(m: float, clean: float, corrupt: float) -> float:
    return (m - clean) / (corrupt - clean) if corrupt != clean else float("nan")


def activation_patching(
    model: TransformerBridge,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    *,
    hook: str = "z",
    by: str = "head",
    layers: Sequence[int] | None = None,
    direction: str = "noising",
    progress: bool = True,
    metric_reads_last_token: bool = False,
    fast: bool = True,
) -> torch.Tensor:
    """Normalised effect of patching each head (or head x position) between the two runs.

    Returns [layer, head] (``by="head"``) or [layer, head, position] (``by="position"``);
    ``metric(logits) -> float`` is computed on the patched run: the clean run with corrupted
    activations (``direction="noising"``, default) or the corrupted run with clean ones
    (``"denoising"``, transformer-lens' convention); see the module docstring.

    ``hook="z"``, ``by="head"`` (``fast``, default): each patched run resumes at the patched
    layer from the base run's cached residual, with all heads of a layer in one batched
    forward (``interp.ablation.resume``; the same numbers, tested); where that cannot be done
    exactly for a model the bridge runs every patch from the tokens. With
    ``metric_reads_last_token`` (the metric reads only each prompt's last real token, as every
    metric in ``interp.ablation.metrics`` does) the unembedding runs there only.
    """
    _check_pair(clean, corrupted)
    if direction not in ("noising", "denoising"):
        raise InputError(f"direction must be 'noising' or 'denoising', got {direction!r}")
    if hook not in PATCHABLE:
        raise InputError(f"cannot patch {hook!r}; use one of {', '.join(PATCHABLE)}")
    if by not in ("head", "position"):
        raise InputError(f"by must be 'head' or 'position', got {by!r}")
    n_layers = int(model.cfg.n_layers)
    layers = list(range(n_layers)) if layers is None else list(layers)
    n_heads = n_kv_heads(model) if hook in ("k", "v") else int(model.cfg.n_heads)
    names = {la: act_name(hook, la) for la in layers}
    base, donor = (clean, corrupted) if direction == "noising" else (corrupted, clean)
    base_logits = _run(model, base)
    m_base, m_donor = metric(base_logits), metric(_run(model, donor))
    if fast and hook == "z" and by == "head":
        from interp.ablation.resume import resume_runner

        runner = resume_runner(model, base, base_logits, metric)
        if runner is not None:
            try:
                return _resumed_z_patching(model, runner, base, donor, metric, layers,
                                           (m_base, m_donor), metric_reads_last_token,
                                           progress)  # fmt: skip
            finally:
                runner.close()
    source = _cache(model, donor, set(names.values()))
    n_pos = clean.tokens.shape[1]
    positions = [None] if by == "head" else list(range(n_pos))
    out = torch.full((n_layers, n_heads, len(positions)), float("nan"))
    jobs = [(la, h, i) for la in layers for h in range(n_heads) for i in range(len(positions))]
    for la, h, i in tqdm(jobs, desc=f"patching {hook}", disable=not progress):
        name, pos = names[la], positions[i]

        def hook_fn(x, hook, name=name, h=h, pos=pos, kind=hook):  # TL passes hook=HookPoint
            return _set(x, source[name].to(x), kind, h, pos)

        out[la, h, i] = normalised(metric(_run(model, base, [(name, hook_fn)])), m_base, m_donor)
    return out[..., 0] if by == "head" else out


@torch.no_grad()
def _resumed_z_patching(
    model: TransformerBridge,
    runner,
    base: TokenBatch,
    donor: TokenBatch,
    metric: Metric,
    layers: list[int],
    metrics: tuple[float, float],
    last_token_only: bool,
    progress: bool,
) -> torch.Tensor:
    """``activation_patching(hook="z", by="head")`` through ``interp.ablation.resume``: one
    batched forward per layer (a copy of the base batch per head), from the layer's input."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    d_head = int(model.cfg.d_head)
    inputs = runner.base_inputs  # recorded by the runner's self-check
    _, donor_z, _ = runner.record(donor)
    out = torch.full((n_layers, n_heads), float("nan"))
    for la in tqdm(layers, desc="patching z (one forward per layer)", disable=not progress):
        heads = list(range(n_heads))
        logits = runner.patched_logits(base, la, inputs[la], donor_z[la], heads, d_head,
                                       last_token_only=last_token_only)  # fmt: skip
        for h, lg in zip(heads, logits, strict=True):
            out[la, h] = normalised(metric(lg), *metrics)
    return out


def path_patching(
    model: TransformerBridge,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    sender: tuple[int, int],
    receivers: Sequence[tuple[int, int]],
    *,
    receiver_input: str = "q",
) -> float:
    """Normalised effect of the path sender -> receivers' ``receiver_input`` (Wang et al. 2022).

    1. Run clean with the sender's output taken from the corrupted run and every other head's
       output frozen to its clean value; record the receivers' q (or k, v).
    2. Run clean with only the receivers' q/k/v replaced by those values; measure.
    """
    _check_pair(clean, corrupted)
    if receiver_input not in ("q", "k", "v"):
        raise InputError("receiver_input must be 'q', 'k' or 'v'")
    s_layer, s_head = sender
    if any(r_layer <= s_layer for r_layer, _ in receivers):
        raise InputError(f"receivers must come after the sender's layer {s_layer}")
    n_layers = int(model.cfg.n_layers)
    z_names = [act_name("z", la) for la in range(n_layers)]
    clean_z = _cache(model, clean, set(z_names))
    sender_z = _cache(model, corrupted, {z_names[s_layer]})[z_names[s_layer]]
    rec_names = {la: act_name(receiver_input, la) for la, _ in receivers}
    n_rep = int(model.cfg.n_heads) // n_kv_heads(model)

    # hook names can be aliases (the bridge reports hook_z as attn.o.hook_in): bind by closure
    def freeze(name: str, layer: int):
        def hook(x, hook):
            x = clean_z[name].to(x).clone()
            if layer == s_layer:
                x[:, :, s_head] = sender_z[:, :, s_head].to(x)
            return x

        return hook

    captured: dict[str, torch.Tensor] = {}

    def capture(name: str):
        def hook(x, hook):
            captured[name] = x.detach().clone()

        return hook

    rec = sorted(set(rec_names.values()))
    hooks = [(n, freeze(n, la)) for la, n in enumerate(z_names)] + [(n, capture(n)) for n in rec]
    _run(model, clean, hooks)

    def patch_receivers(name: str, layer: int):
        def hook(x, hook):
            x = x.clone()
            for la, h in receivers:
                if la == layer:
                    idx = h // n_rep if receiver_input in ("k", "v") else h
                    x[:, :, idx] = captured[name][:, :, idx].to(x)
            return x

        return hook

    patches = [(n, patch_receivers(n, la)) for la, n in rec_names.items()]
    m = metric(_run(model, clean, patches))
    return normalised(m, metric(_run(model, clean)), metric(_run(model, corrupted)))
