"""Training-time head plans of the v2 planted models (``ToyConfig.head_plan``; docs/methods.md
section 9). Nothing here is saved with the model: the trained model is an ordinary Llama.

On a sequence of sub-task T (``Batch.parts``):

- the heads in T's plan run as usual;
- every other head (but the loud ones below) is dropped (its output zeroed) with probability
  ``head_drop``, is detached from T's loss when ``head_detach``, and pays ``head_quiet`` x its
  mean squared write ||z W_O||^2 when kept, so it learns to stay quiet on T instead of becoming
  a backup;
- with ``head_loud`` > 0, the heads in no plan are *loud distractors*: never dropped, detached
  from every task loss, and trained (weight ``head_loud``) to write a fixed vector t_h u_h at
  every position, u_h a random unit direction and t_h = f_h m, with f_h drawn uniformly in
  ``LOUD_RANGE`` and m the running mean write norm of the planned heads (each head's mean over
  the batch's real tokens). They write about as much as the heads that do the work and carry no
  information a task could use, so that a ranking by write norm should not find a mechanism
  (how far this goes on the shipped models: docs/methods.md section 9).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from circuits.tasks import complexity as tasks
from interp.errors import InputError

LOUD_RANGE = (0.25, 1.75)  # f_h: a loud head's target norm over the planned heads' mean
LOUD_SEED = 7_000_003
Head = tuple[int, int]


def plan_heads(plan: dict) -> dict[str, set[Head]]:
    """sub-task -> set of (layer, head) from a ``head_plan`` dict."""
    return {task: {(int(la), int(h)) for la, h in heads} for task, heads in plan.items()}


def loud_heads(plan: dict, n_layers: int, n_heads: int) -> list[Head]:
    """The heads in no plan, layer by layer."""
    planned = set().union(*plan_heads(plan).values()) if plan else set()
    return [(la, h) for la in range(n_layers) for h in range(n_heads) if (la, h) not in planned]


def loud_targets(
    heads: list[Head], d_model: int, seed: int
) -> dict[Head, tuple[float, torch.Tensor]]:
    """Per loud head: (f_h, u_h [d_model], a unit vector), drawn from ``seed``."""
    rng = torch.Generator().manual_seed(seed + LOUD_SEED)
    lo, hi = LOUD_RANGE
    out = {}
    for hd in heads:
        f = lo + (hi - lo) * float(torch.rand(1, generator=rng))
        u = torch.randn(d_model, generator=rng)
        out[hd] = (f, u / u.norm())
    return out


def head_plan_hooks(model, cfg) -> tuple[Callable, Callable, Callable]:
    """Forward pre-hooks on each layer's output projection (module docstring). Returns
    (set_batch(batch, rng), penalty() -> the weighted quiet + loud terms, remove())."""
    n_layers, n_heads, d_head = cfg.n_layers, cfg.n_heads, cfg.d_head
    d_model = n_heads * d_head
    allowed = plan_heads(cfg.head_plan)
    planned = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for hs in allowed.values():
        for la, h in hs:
            planned[la, h] = True
    loud = ~planned if cfg.head_loud else torch.zeros_like(planned)
    targets = loud_targets([tuple(x) for x in loud.nonzero().tolist()], d_model, cfg.seed)
    direction = torch.zeros(n_layers, n_heads, d_model)
    factor = torch.zeros(n_layers, n_heads)
    for (la, h), (f, u) in targets.items():
        direction[la, h], factor[la, h] = u, f
    # keep [batch, layer, head]: 1 keeps the output, 0 drops it; inside: 1 when the head is in
    # the row's plan; real [batch, pos]; m: the running mean write norm of the planned heads
    state: dict = {
        "keep": None,
        "inside": None,
        "real": None,
        "m": None,
        "sum": 0.0,
        "n": 0,
        "max": 0.0,
        "step": -1,
    }
    # experimental schedule (cfg.extra; defaults = the shipped recipe): the loud heads are
    # silenced until loud_start x steps, their target grows linearly over loud_ramp x steps,
    # and is scaled by the planned heads' mean ("mean") or largest ("max") per-head write norm
    loud_start = int(float(cfg.extra.get("loud_start", 0.0)) * cfg.steps)
    loud_ramp = int(float(cfg.extra.get("loud_ramp", 0.0)) * cfg.steps)
    loud_ref = cfg.extra.get("loud_ref", "mean")
    terms: dict[str, list[torch.Tensor]] = {"quiet": [], "loud": []}

    def per_channel(mask: torch.Tensor, layer: int) -> torch.Tensor:
        return mask[:, layer].repeat_interleave(d_head, dim=-1)[:, None, :]

    def make(layer: int):
        def pre(module, args):
            keep, inside, real = state["keep"], state["inside"], state["real"]
            if keep is None:
                return None
            (x,) = args  # [batch, pos, head * d_head]
            b, pos = x.shape[:2]
            w = module.weight.reshape(-1, n_heads, d_head)  # [d_model, head, d_head]
            writes = torch.einsum("bphd,mhd->bphm", x.reshape(b, pos, n_heads, d_head), w)
            norms = writes.detach().norm(dim=-1)[real]  # [real tokens, head]
            if planned[layer].any():
                state["sum"] += float(norms[:, planned[layer]].mean()) * int(planned[layer].sum())
                state["n"] += int(planned[layer].sum())
                state["max"] = max(state["max"], float(norms[:, planned[layer]].mean(0).max()))
            is_loud = loud[layer]
            on = state["step"] >= loud_start
            if is_loud.any() and state["m"] is not None and on:
                grow = 1.0 if not loud_ramp else min(1.0, (state["step"] - loud_start) / loud_ramp)
                m = state["m"]
                target = grow * m * factor[layer][:, None] * direction[layer]  # [head, d_model]
                err = (writes[:, :, is_loud] - target[is_loud].to(x)).pow(2).sum(-1)
                terms["loud"].append(err[real].mean() * is_loud.sum() / m**2)
            x = x * per_channel(keep, layer).to(x)
            if cfg.head_quiet:  # the writes of the kept planned heads outside each row's plan
                outside = (1 - inside[:, layer]) * keep[:, layer] * (~is_loud).float()
                sq = (writes.pow(2).sum(-1) * outside[:, None, :].to(x))[real]  # [tokens, head]
                terms["quiet"].append(sq.sum() / max(1.0, float(outside.sum()) * pos))
            gate = (~is_loud).float()[None, :].expand(b, -1)
            if cfg.head_detach:
                gate = gate * inside[:, layer]
            if bool((gate == 1).all()):
                return (x,)
            g = gate.repeat_interleave(d_head, dim=-1)[:, None, :].to(x)
            return (g * x + (1 - g) * x.detach(),)

        return pre

    handles = [
        layer.self_attn.o_proj.register_forward_pre_hook(make(i))
        for i, layer in enumerate(model.model.layers)
    ]

    def set_batch(batch: tasks.Batch, rng: torch.Generator) -> None:
        if not batch.parts:
            raise InputError("head_plan needs a mixture batch whose rows record their sub-task")
        state["step"] += 1
        if state["n"]:  # the planned heads' mean write norm of the last step, smoothed
            last = state["sum"] / state["n"] if loud_ref == "mean" else state["max"]
            state["m"] = last if state["m"] is None else 0.9 * state["m"] + 0.1 * last
        state["sum"], state["n"], state["max"] = 0.0, 0, 0.0
        keep = torch.ones(len(batch.parts), n_layers, n_heads)
        inside = torch.ones(len(batch.parts), n_layers, n_heads)
        for i, part in enumerate(batch.parts):
            if part not in allowed:  # a sub-task without a plan may use every planned head
                continue
            other = ~loud  # every head but the loud ones and the row's own plan
            for la, h in allowed[part]:
                other[la, h] = False
            drop = other & (torch.rand(n_layers, n_heads, generator=rng) < cfg.head_drop)
            keep[i][drop] = 0.0
            inside[i][other] = 0.0
        if state["step"] < loud_start:  # the loud heads are silent before their start
            keep[:, loud] = 0.0
        state["keep"], state["inside"] = keep, inside
        state["real"] = batch.attention_mask.bool()
        terms["quiet"].clear()
        terms["loud"].clear()

    def penalty() -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        if terms["quiet"]:
            total = total + cfg.head_quiet * sum(terms["quiet"])
        if terms["loud"]:
            total = total + cfg.head_loud * sum(terms["loud"]) / int(loud.sum())
        return total

    def remove() -> None:
        state["keep"] = None
        for hd in handles:
            hd.remove()

    return set_batch, penalty, remove
