"""Planted attention sinks: a model whose heads must idle on most tokens, with a first token to
idle on, and the same model trained without one (the negative).

Task ``backcopy`` (``circuits.tasks.complexity``; the Bigram-Backcopy task of Guo et al. 2024,
"Active-dormant attention heads"): bigram steps, and after a trigger token a copy of the token
before it. A head that copies is needed only after triggers; elsewhere ("idle" predictions) its
write can only hurt, so it must attend somewhere harmless: the ``<bos>`` every sequence starts
with. ``backcopy_no_bos``: the same sequences without ``<bos>``. Both recipes keep the token
embeddings at a fixed norm (``ToyConfig.embed_norm``): with free norms the model we trained first
silenced its heads by shrinking the trigger embeddings 6x (the final RMSNorm then scales head
writes up only at triggers) and needed no sink at all.

Ground truth (``establish_sink_truth``), measured on held-out sequences by hiding the first key
from heads (``interp.ablation.first_key_mask_hooks``; the softmax spreads that attention over
the other keys) and reading the mean next-token loss on the idle predictions:

1. ``first_key_cost_all``: the first key hidden from every head. With ``<bos>`` it must cost at
   least ``RELIES`` (0.05 nats), else the model does not rely on its first token (an error);
   without ``<bos>`` at most ``NO_SINK`` (0.01 nats), else the negative has a sink (an error);
2. ``first_key_cost``: hidden from one head alone;
3. the sink heads: heads taken in order of their own cost until hiding the first key from
   every other head at once costs at most ``SPARE`` (10 %) of ``first_key_cost_all``
   (``others_cost``), the same bound the circuit models put on the heads outside their circuit.
   Reliance on a sink can be collective: in the shipped model the head that costs most alone
   carries half of the total, and the other seven together 30 %.

The ground truth is what the model needs, not where its attention goes: a head may put half its
attention on ``<bos>`` and lose nothing without it (it then idles well enough on the other
tokens). The sink detector measures the attention (mean s_0 > 0.3); the benchmark reports where
the two disagree.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from circuits.measures import eval_batch
from circuits.tasks import complexity as tasks
from circuits.toy import ToyConfig
from interp.ablation import first_key_mask_hooks
from interp.errors import InputError

RELIES = 0.05  # nats: the first key hidden from every head must cost this much (with <bos>)
NO_SINK = 0.01  # nats: ... and at most this much in the negative (no <bos>)
SPARE = 0.1  # the heads outside the sink set may together cost at most 10 % of the total
SINK_TASKS = {"backcopy": True, "backcopy_no_bos": False}  # task -> a sink is expected


def is_sink_task(cfg: ToyConfig) -> bool:
    return cfg.task in SINK_TASKS


def _predictions(batch: tasks.Batch, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, L-1] masks of scored predictions (logits at t predict ids[t + 1]): after a trigger
    (backcopy) and elsewhere (idle)."""
    triggers = torch.tensor([tasks.INDEX[f"D{i}"] for i in range(c)])
    scored = batch.scored[:, 1:]
    after_trigger = torch.isin(batch.ids[:, :-1], triggers)
    return scored & after_trigger, scored & ~after_trigger


@torch.no_grad()
def backcopy_measures(
    model: TransformerBridge, batch: tasks.Batch, c: int, hooks=()
) -> dict[str, float]:
    """Greedy accuracy of the backcopy predictions and mean loss (nats) of the idle ones."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(batch.ids, attention_mask=batch.attention_mask)[:, :-1].float()
    target = batch.ids[:, 1:]
    copy, idle = _predictions(batch, c)
    nll = -torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]
    right = logits.argmax(-1) == target
    return {
        "backcopy_accuracy": float(right[copy].float().mean()),
        "idle_loss": float(nll[idle].mean()),
    }


@torch.no_grad()
def establish_sink_truth(model: TransformerBridge, cfg: ToyConfig) -> dict[str, Any]:
    """The causal ground truth of a trained sink model (module docstring)."""

    if not is_sink_task(cfg):
        raise InputError(f"the {cfg.task!r} task plants no sinks; use one of {list(SINK_TASKS)}")
    batch = eval_batch(cfg)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    base = backcopy_measures(model, batch, cfg.complexity)
    if base["backcopy_accuracy"] < 0.9:
        raise InputError(
            f"the model solves too little of the task to have a ground truth (backcopy "
            f"accuracy {base['backcopy_accuracy']:.3f}); train longer"
        )

    def cost(hidden: list[tuple[int, int]]) -> float:
        hooks = first_key_mask_hooks(model, hidden)
        return (
            backcopy_measures(model, batch, cfg.complexity, hooks)["idle_loss"] - base["idle_loss"]
        )

    cost_all = cost(heads)
    per_head = [[cost([(la, h)]) for h in range(n_heads)] for la in range(n_layers)]
    share = [[c / cost_all if cost_all > 0 else 0.0 for c in row] for row in per_head]
    expected = SINK_TASKS[cfg.task]
    if expected and cost_all < RELIES:
        raise InputError(
            f"no sink to plant: hiding the first token from every head costs {cost_all:.3f} "
            f"nats on the idle predictions (should be >= {RELIES})"
        )
    if not expected and cost_all > NO_SINK:
        raise InputError(
            f"the negative relies on its first token: hiding it from every head costs "
            f"{cost_all:.3f} nats (should be <= {NO_SINK})"
        )
    sinks: list[tuple[int, int]] = []
    others_cost = cost_all
    for hd in sorted(heads, key=lambda x: -per_head[x[0]][x[1]]):
        if not expected or others_cost <= SPARE * cost_all:
            break
        sinks.append(hd)
        others_cost = cost([x for x in heads if x not in sinks])
    return {
        "task": cfg.task,
        "complexity": cfg.complexity,
        "accuracy": base["backcopy_accuracy"],  # the backcopy predictions
        "chance": tasks.chance(cfg.task),
        "idle_loss": base["idle_loss"],
        "n_eval_sequences": len(batch.ids),
        "intervention": "first key hidden from a head's queries (first_key_mask_hooks)",
        "relies": RELIES,
        "no_sink": NO_SINK,
        "spare": SPARE,
        "first_key_cost_all": cost_all,
        "first_key_cost": per_head,
        "first_key_share": share,
        "others_cost": others_cost,
        "sink_heads_cost": cost(sinks) if sinks else 0.0,  # the first key hidden from them only
        "circuit": [list(hd) for hd in sinks],
        "roles": {"sink": [list(hd) for hd in sinks]},
        "config": asdict(cfg),
    }


def describe_sink_truth(truth: dict[str, Any]) -> str:
    head = (
        f"backcopy accuracy {truth['accuracy']:.3f}; hiding the first token from every head "
        f"costs {truth['first_key_cost_all']:.3f} nats on the idle predictions"
    )
    if not truth["roles"]["sink"]:
        return f"{head} (<= {truth['no_sink']}): no sink head, the negative"
    heads = ", ".join(f"L{la}.H{h}" for la, h in truth["roles"]["sink"])
    return (
        f"{head}; sink heads {heads} (hiding it from every other head costs "
        f"{truth['others_cost']:.3f}, <= {truth['spare']:.0%} of that)"
    )
