"""Measuring a trained toy model on task sequences (``circuits.tasks.complexity.Batch``): the
accuracy its planted ground truths are established by."""

from __future__ import annotations

import torch
from transformer_lens.model_bridge import TransformerBridge

from circuits.tasks import complexity as tasks
from interp.tokens import TokenBatch, from_token_ids

EVAL_SEED = 30_000_000  # held-out data: a seed range training never uses
N_EVAL = 512


def eval_batch(cfg, n: int = N_EVAL) -> tasks.Batch:
    """The held-out sequences of a planted model's task (``cfg``: its ``ToyConfig``)."""
    return tasks.sample(cfg.task, cfg.complexity, n, cfg.seed + EVAL_SEED)


def as_token_batch(batch: tasks.Batch) -> TokenBatch:
    lengths = batch.attention_mask.sum(1).tolist()
    return TokenBatch(batch.ids, batch.attention_mask, lengths, [[] for _ in lengths])


@torch.no_grad()
def task_accuracy(model: TransformerBridge, batch: tasks.Batch, hooks=()) -> float:
    """Share of scored positions whose greedy next-token prediction is right."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(batch.ids, attention_mask=batch.attention_mask)
    right = logits[:, :-1].argmax(-1) == batch.ids[:, 1:]
    return float(right[batch.scored[:, 1:]].float().mean())


def pairs_batch(
    model: TransformerBridge,
    name: str,
    clean: list[list[int]],
    corrupted: list[list[int]],
    answers: list[int],
    wrongs: list[int],
):
    """A ``circuits.tasks.TaskBatch`` from token-id prompts of a toy task (prompts as text)."""
    from circuits.tasks import TaskBatch

    return TaskBatch(
        name,
        from_token_ids(model, clean),
        from_token_ids(model, corrupted),
        torch.tensor(answers),
        torch.tensor(wrongs),
        [tasks.to_text(c) for c in clean],
        [tasks.to_text(c) for c in corrupted],
    )
