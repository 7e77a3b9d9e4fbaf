"""Computations of the per-prompt dashboard views: heads ranked on the user's prompt, patching
of every head between the prompt and a corrupted one, and direct logit attribution (no Dash
here, so they are tested directly)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformer_lens.model_bridge import TransformerBridge

from dashboards.analysis import check_prompt, check_twin
from interp.ablation.heads import head_writes
from interp.ablation.patching import activation_patching
from interp.errors import InputError
from interp.heads import detector_names
from interp.heads.on_prompt import prompt_measures
from interp.models.info import is_causal
from interp.tokens import tokenize

#: patching runs one forward pass per head: longer prompts are refused with this limit
MAX_PATCH_TOKENS = 128


def rank_table(model: TransformerBridge, prompt: str) -> pd.DataFrame:
    """One row per head: the head statistics and every per-prompt detector's score on the
    prompt's own tokens (``interp.heads.on_prompt``; the sweep's ``<detector>_on_prompts``)."""
    ids = check_prompt(model, prompt)
    if len(ids) < 2:
        raise InputError("the prompt needs at least 2 tokens to score heads on it")
    wanted = {"head_stats", *detector_names(causal=is_causal(model), per_prompt=True)}
    measures = prompt_measures(model, ids, wanted)
    n_layers, n_heads = next(iter(measures.values())).shape
    table = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
        }
    )
    for key, value in sorted(measures.items()):
        if key == "sink_score_0" and "sink.score" in measures:
            continue  # the same s_0 as the sink detector's score
        table[key.replace(".score", "")] = value.reshape(-1).float().numpy()
    return table


def _direction(model: TransformerBridge, target: int, foil: int) -> torch.Tensor:
    """The final norm's weight times W_U[:, target] - W_U[:, foil] ([d_model])."""
    w_u = model.W_U.detach().float()
    weight = getattr(model.ln_final.original_component, "weight", None)
    scale = weight.detach().float() if weight is not None else torch.ones(w_u.shape[0])
    return scale * (w_u[:, target] - w_u[:, foil])


@torch.no_grad()
def direct_logit_attribution(
    model: TransformerBridge, prompt: str, target: int, foil: int
) -> np.ndarray:
    """[layer, head]: each head's write at the last position, divided by the final norm's scale
    of this run (frozen, as transformer-lens' ``apply_ln_to_stack``) and projected on the
    direction that raises logit(target) - logit(foil)."""
    if not is_causal(model):
        raise InputError("direct logit attribution needs a causal language model")
    ids = check_prompt(model, prompt)
    batch = tokenize(model, [prompt])
    last = torch.zeros(batch.tokens.shape, dtype=torch.float32)
    last[0, len(ids) - 1] = 1.0
    writes = head_writes(model, batch, last)[0]  # [layer * head, d_model]
    _, cache = model.run_with_cache(
        batch.tokens, names_filter=lambda n: n == "ln_final.hook_scale", return_cache_object=False
    )
    scale = cache["ln_final.hook_scale"][0, len(ids) - 1].float()  # the RMS / std of this run
    dla = (writes / scale) @ _direction(model, target, foil)
    return dla.reshape(int(model.cfg.n_layers), int(model.cfg.n_heads)).numpy()


@dataclass
class PatchingView:
    effect: np.ndarray  # [layer, head] normalised effect of patching each head's z (noising)
    dla: np.ndarray  # [layer, head] direct logit attribution on the clean prompt
    clean_diff: float
    corrupted_diff: float
    target: int
    foil: int


@torch.no_grad()
def patching_view(
    model: TransformerBridge, prompt: str, corrupted: str, target: int | None, foil: int | None
) -> PatchingView:
    """Patch each head's ``hook_z`` from ``corrupted`` into ``prompt`` (noising) and measure
    logit(target) - logit(foil) at the last position; target / foil default to the clean
    prompt's top two next tokens."""
    if not is_causal(model):
        raise InputError("patching by logit difference needs a causal language model")
    ids = check_prompt(model, prompt)
    check_twin(model, ids, corrupted, "patching")
    if len(ids) > MAX_PATCH_TOKENS:
        raise InputError(
            f"the prompt has {len(ids)} tokens; patching in the page takes at most "
            f"{MAX_PATCH_TOKENS} (one forward pass per head): use interp.ablation.patching"
        )
    clean, dirty = tokenize(model, [prompt]), tokenize(model, [corrupted])
    logits = model(clean.tokens)[0, -1]
    top2 = logits.topk(2).indices.tolist()
    target = top2[0] if target is None else target
    foil = top2[1] if foil is None else foil
    if target == foil:
        raise InputError("target and foil are the same token; choose two different ones")

    def diff(out: torch.Tensor) -> float:
        return float(out[0, -1, target] - out[0, -1, foil])

    effect = activation_patching(model, clean, dirty, diff, hook="z", progress=False).numpy()
    return PatchingView(
        effect=effect,
        dla=direct_logit_attribution(model, prompt, target, foil),
        clean_diff=diff(model(clean.tokens)),
        corrupted_diff=diff(model(dirty.tokens)),
        target=target,
        foil=foil,
    )
