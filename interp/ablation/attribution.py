"""Attribution patching: every head's effect on a metric from one forward and one backward pass
(AtP, Nanda 2023; AtP*, Kramar et al. 2024, arXiv 2403.00745; docs/methods.md section 11).

The exact effect of an intervention on head h is ``metric(intervened) - metric(clean)``: one
forward pass per head. AtP estimates all of them at once by a first-order expansion around the
clean run: effect_h ~ <d metric / d x_h, x_h' - x_h>, with x_h the head's activation on the
clean input and x_h' the activation the intervention gives it.

- ``pattern_attribution``: interventions on a head's pre-softmax scores (hide the first key,
  hide the sink keys, uniform attention). x_h is the head's attention pattern, and x_h' is
  computed *exactly* from the clean scores with the edit applied (a softmax per head, no model
  run). This is AtP*'s fix for saturated attention (its "QK fix": the linear expansion of the
  softmax is what fails when a score moves by a lot, so the pattern change is recomputed
  exactly and only the map from pattern to metric is linearised).
- ``z_attribution``: activation patching of a head's output ``hook_z`` from a corrupted run
  (x_h' = the head's z on the corrupted input): the original AtP.

``steps`` > 1 replaces the single expansion at the clean run by integrated gradients along
the path on which every head moves together from its clean to its intervened activation (the
midpoint rule over ``steps`` points), as EAP-IG does for edges (Hanna et al. 2024, "Have Faith in
Faithfulness") and Marks et al. 2024 for SAE features. Hiding a sink moves a pattern far:
5 steps rank the planted models' sink heads better than 1, and SmolLM2's worse
(docs/methods.md section 11). Not implemented: AtP*'s GradDrop (one
backward pass per layer against cancellation between paths). ``exact_effects`` runs the
intervention itself on chosen heads, to check the estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.hook_names import act_name

#: metric(logits [batch, pos, vocab]) -> a scalar tensor (differentiable)
Metric = Callable[[Tensor], Tensor]
Hooks = list[tuple[str, Callable]]


@dataclass
class Attribution:
    """``estimate`` [layer, head]: the estimated change of the metric per head; ``value``: the
    metric on the clean run."""

    value: float
    estimate: Float[Tensor, "layer head"]


def _forward(model: TransformerBridge, tokens: Tensor, mask: Tensor | None, hooks: Hooks) -> Tensor:
    with model.hooks(fwd_hooks=hooks):
        return model(tokens, attention_mask=mask)


def _midpoints(steps: int) -> list[float]:
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    return [0.0] if steps == 1 else [(k + 0.5) / steps for k in range(steps)]


def _integrate(
    model: TransformerBridge,
    tokens: Tensor,
    mask: Tensor | None,
    metric: Metric,
    hooks: Hooks,
    moved: dict[int, tuple[Tensor, Tensor]],
    at: dict[str, float],
    steps: int,
    dims: tuple[int, ...],
) -> Attribution:
    """Run forward + backward at each point t of the path (``at["t"]``, read by ``hooks``,
    which store each layer's (change, zero leaf) in ``moved``) and sum <gradient, change> over
    ``dims`` (all but the head axis), averaged over the points."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    estimate = torch.zeros(n_layers, n_heads)
    value = float("nan")
    for t in _midpoints(steps):
        at["t"] = t
        with torch.enable_grad():
            out = metric(_forward(model, tokens, mask, hooks))
            out.backward()
        if steps == 1:
            value = float(out.detach())
        for la, (delta, d) in moved.items():
            grad = d.grad if d.grad is not None else torch.zeros_like(d)  # layer not reached
            estimate[la] += (grad * delta).sum(dims).float() / steps
    if steps > 1:
        with torch.no_grad():
            value = float(metric(_forward(model, tokens, mask, [])))
    return Attribution(value, estimate)


def pattern_attribution(
    model: TransformerBridge,
    tokens: Tensor,
    attention_mask: Tensor | None,
    metric: Metric,
    edit: Callable[[Tensor], Tensor],
    rows: Tensor | None = None,
    steps: int = 1,
) -> Attribution:
    """Every head's estimated effect of the score ``edit`` (module docstring), with the exact
    pattern change. ``tokens`` [batch, pos]; ``rows`` (bool [batch, query], optional): the
    query rows the intervention touches (the others keep their pattern), as
    ``interp.ablation.uniform.score_hooks`` does for the exact run. ``steps`` > 1: integrated
    gradients (midpoint rule) along the path on which every head's pattern moves together
    from clean to edited, each pattern change recomputed from the scores at that point."""
    n_layers = int(model.cfg.n_layers)
    scores: dict[int, Tensor] = {}
    moved: dict[int, tuple[Tensor, Tensor]] = {}
    at = {"t": 0.0}

    def keep_scores(layer: int):
        def hook(x: Tensor, hook) -> None:
            scores[layer] = x  # live: at t > 0 the edited pattern moves with the layers below

        return hook

    def move(layer: int):
        def hook(a: Tensor, hook) -> Tensor:
            change = edit(scores[layer]).float().softmax(-1).to(a.dtype) - a
            if rows is not None:
                change = change * rows[:, None, :, None].to(change)
            d = torch.zeros_like(a, requires_grad=True)  # d's gradient: d metric / d a
            moved[layer] = (change.detach(), d)
            return a + at["t"] * change + d

        return hook

    hooks = [(act_name("attn_scores", la), keep_scores(la)) for la in range(n_layers)]
    hooks += [(act_name("pattern", la), move(la)) for la in range(n_layers)]
    return _integrate(model, tokens, attention_mask, metric, hooks, moved, at, steps, (0, 2, 3))


def z_attribution(
    model: TransformerBridge,
    clean: Tensor,
    corrupted: Tensor,
    attention_mask: Tensor | None,
    metric: Metric,
    steps: int = 1,
) -> Attribution:
    """Estimated effect of patching each head's ``hook_z`` from the ``corrupted`` run into the
    ``clean`` one (both [batch, pos], same shape and padding). ``steps`` > 1: integrated
    gradients along the path on which every head's z moves together toward its corrupted
    value."""
    n_layers = int(model.cfg.n_layers)
    names = [act_name("z", la) for la in range(n_layers)]
    corrupt_z = z_cache(model, corrupted, attention_mask, range(n_layers))
    moved: dict[int, tuple[Tensor, Tensor]] = {}
    at = {"t": 0.0}

    def move(layer: int):
        def hook(z: Tensor, hook) -> Tensor:  # [batch, pos, head, d_head]
            change = corrupt_z[layer].to(z) - z  # live: z moves with the layers below
            d = torch.zeros_like(z, requires_grad=True)
            moved[layer] = (change.detach(), d)
            return z + at["t"] * change + d

        return hook

    hooks = [(names[la], move(la)) for la in range(n_layers)]
    return _integrate(model, clean, attention_mask, metric, hooks, moved, at, steps, (0, 1, 3))


def z_patch_hooks(
    model: TransformerBridge,
    heads: Iterable[tuple[int, int]],
    corrupted: Tensor | None = None,
    mask=None,
    *,
    cache: dict[int, Tensor] | None = None,
) -> Hooks:
    """Forward hooks that patch each head's ``hook_z`` from the ``corrupted`` run (or from
    ``cache``, layer -> z [batch, pos, head, d_head], from ``z_cache``)."""
    heads = list(heads)
    layers = sorted({la for la, _ in heads})
    if cache is None and corrupted is None:
        raise InputError("z_patch_hooks needs the corrupted tokens or their z cache")
    z = cache if cache is not None else z_cache(model, corrupted, mask, layers)  # type: ignore[arg-type]

    def make(layer: int, idx: list[int]):
        def hook(x: Tensor, hook) -> Tensor:
            x = x.clone()
            x[:, :, idx] = z[layer][:, :, idx].to(x)
            return x

        return hook

    return [(act_name("z", la), make(la, [h for lb, h in heads if lb == la])) for la in layers]


@torch.no_grad()
def z_cache(model: TransformerBridge, tokens: Tensor, mask, layers: Iterable[int]) -> dict:
    """layer -> ``hook_z`` [batch, pos, head, d_head] on ``tokens``."""
    names = {act_name("z", la): la for la in layers}
    _, cache = model.run_with_cache(
        tokens, attention_mask=mask, names_filter=lambda n: n in names, return_cache_object=False
    )
    return {la: cache[n].detach() for n, la in names.items()}


@torch.no_grad()
def exact_effects(
    run: Callable[[tuple[int, int] | None], float], heads: Sequence[tuple[int, int]]
) -> list[float]:
    """The exact effect per head, ``run(head) - run(None)``: ``run`` evaluates the metric with
    that head's intervention (``None``: the clean run)."""
    base = run(None)
    return [run(h) - base for h in heads]
