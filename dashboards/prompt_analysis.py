"""Computations of the per-prompt dashboard views: heads ranked on the user's prompt, patching
of every head between the prompt and a corrupted one, and direct logit attribution (no Dash
here, so they are tested directly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformer_lens.model_bridge import TransformerBridge

from dashboards.analysis import check_prompt, check_twin
from interp.ablation.attribution import z_attribution, z_cache, z_patch_hooks
from interp.ablation.heads import head_writes
from interp.ablation.patching import normalised
from interp.errors import InputError
from interp.heads import detector_names
from interp.heads.on_prompt import prompt_measures
from interp.models.info import is_causal
from interp.tokens import TokenBatch, tokenize

#: exact patching runs one forward pass per head: longer prompts are refused with this limit
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
    """Patching of every head's ``hook_z`` from the corrupted prompt (noising), measured by
    m = logit(target) - logit(foil) at the last position; effects normalised as
    (m - m_clean) / (m_corrupted - m_clean).

    ``estimate``: attribution patching (AtP: one forward and one backward pass, every head at
    once); ``exact``: the real intervention, one forward pass per head, NaN for the heads not
    run yet (``exact_patching`` fills it, largest estimates first)."""

    estimate: np.ndarray  # [layer, head]
    exact: np.ndarray  # [layer, head], NaN where not run
    dla: np.ndarray  # [layer, head] direct logit attribution on the clean prompt
    clean_diff: float
    corrupted_diff: float
    target: int
    foil: int
    prompt: str = ""
    corrupted: str = ""

    @property
    def effect(self) -> np.ndarray:
        """The exact effect where it was run, else the estimate."""
        return np.where(np.isnan(self.exact), self.estimate, self.exact)

    def order(self) -> list[tuple[int, int]]:
        """Heads by |estimate|, largest first."""
        flat = np.argsort(-np.abs(self.estimate), axis=None, kind="stable")
        n_heads = self.estimate.shape[1]
        return [(int(i) // n_heads, int(i) % n_heads) for i in flat]


def _pair(model: TransformerBridge, prompt: str, corrupted: str) -> tuple[TokenBatch, TokenBatch]:
    if not is_causal(model):
        raise InputError("patching by logit difference needs a causal language model")
    ids = check_prompt(model, prompt)
    check_twin(model, ids, corrupted, "patching")
    if len(ids) > MAX_PATCH_TOKENS:
        raise InputError(
            f"the prompt has {len(ids)} tokens; patching in the page takes at most "
            f"{MAX_PATCH_TOKENS} (one forward pass per head): use interp.ablation.patching"
        )
    return tokenize(model, [prompt]), tokenize(model, [corrupted])


def patching_view(
    model: TransformerBridge, prompt: str, corrupted: str, target: int | None, foil: int | None
) -> PatchingView:
    """Attribution patching of every head (``PatchingView.estimate``; seconds), the direct
    logit attribution and both runs' logit differences; target / foil default to the clean
    prompt's top two next tokens. Exact patching comes after, on demand (``exact_patching``)."""
    clean, dirty = _pair(model, prompt, corrupted)
    with torch.no_grad():
        logits = model(clean.tokens)[0, -1]
        top2 = logits.topk(2).indices.tolist()
        target = top2[0] if target is None else target
        foil = top2[1] if foil is None else foil
        if target == foil:
            raise InputError("target and foil are the same token; choose two different ones")
        m_clean = float(logits[target] - logits[foil])
        dirty_logits = model(dirty.tokens)[0, -1]
        m_dirty = float(dirty_logits[target] - dirty_logits[foil])

    def metric(out: torch.Tensor) -> torch.Tensor:
        return out[0, -1, target] - out[0, -1, foil]

    att = z_attribution(model, clean.tokens, dirty.tokens, None, metric)
    scale = m_dirty - m_clean
    estimate = (att.estimate / scale).numpy() if scale != 0 else att.estimate.numpy() * np.nan
    return PatchingView(
        estimate=estimate.astype(np.float64),
        exact=np.full(estimate.shape, np.nan),
        dla=direct_logit_attribution(model, prompt, target, foil),
        clean_diff=m_clean,
        corrupted_diff=m_dirty,
        target=target,
        foil=foil,
        prompt=prompt,
        corrupted=corrupted,
    )


@torch.no_grad()
def exact_patching(
    model: TransformerBridge,
    view: PatchingView,
    n_heads: int,
    on_step: Callable[[int, int], None] | None = None,
) -> PatchingView:
    """Run the real intervention on the ``n_heads`` heads with the largest estimates that
    have no exact value yet (one forward pass each; ``on_step(done, total)`` after each) and
    store their normalised effects in ``view.exact``. Equal to ``activation_patching``."""
    clean, dirty = _pair(model, view.prompt, view.corrupted)
    todo = [h for h in view.order() if np.isnan(view.exact[h])][: max(0, int(n_heads))]
    z = z_cache(model, dirty.tokens, None, sorted({la for la, _ in todo}))
    for done, head in enumerate(todo, 1):
        with model.hooks(fwd_hooks=z_patch_hooks(model, [head], cache=z)):
            out = model(clean.tokens)[0, -1]
        m = float(out[view.target] - out[view.foil])
        view.exact[head] = normalised(m, view.clean_diff, view.corrupted_diff)
        if on_step is not None:
            on_step(done, len(todo))
    return view
