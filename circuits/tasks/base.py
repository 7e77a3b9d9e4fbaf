"""The ``TaskBatch`` every task returns, and the task registry."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.metrics import accuracy, logit_diff
from interp.errors import InputError
from interp.tokens import TokenBatch, from_token_ids


@dataclass
class TaskBatch:
    """Clean prompts the model can answer, corrupted twins it cannot, answer/wrong tokens.

    ``clean`` and ``corrupted`` have the same token length prompt by prompt, so activations can
    be patched position by position. Positive examples for SAE circuit discovery are the clean
    prompts, negatives the corrupted ones (O'Neill & Bui 2024)."""

    name: str
    clean: TokenBatch
    corrupted: TokenBatch
    answer: torch.Tensor  # [batch] token id of the right answer
    wrong: torch.Tensor  # [batch] token id of the distractor
    prompts: list[str]
    corrupted_prompts: list[str]

    def logit_diff(self, logits: torch.Tensor) -> float:
        return logit_diff(logits, self.clean.lengths, self.answer, self.wrong)

    def accuracy(self, logits: torch.Tensor) -> float:
        return accuracy(logits, self.clean.lengths, self.answer, self.wrong)


def single_token(model: TransformerBridge, word: str) -> int:
    ids = model.tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InputError(f"{word!r} is {len(ids)} tokens for this tokenizer; tasks need 1")
    return ids[0]


def pair_batch(
    model: TransformerBridge,
    name: str,
    clean: list[str],
    corrupted: list[str],
    answers: list[str],
    wrongs: list[str],
) -> TaskBatch:
    """Tokenize pairs and keep only those whose clean and corrupted lengths match."""
    tok = model.tokenizer
    c_ids, x_ids, keep = [], [], []
    for i, (c, x) in enumerate(zip(clean, corrupted, strict=True)):
        a, b = tok(c)["input_ids"], tok(x)["input_ids"]
        if len(a) == len(b):
            c_ids.append(a)
            x_ids.append(b)
            keep.append(i)
    if not keep:
        raise InputError(f"task {name}: no clean/corrupted pair has matching token lengths")
    return TaskBatch(
        name,
        from_token_ids(model, c_ids),
        from_token_ids(model, x_ids),
        torch.tensor([single_token(model, answers[i]) for i in keep]),
        torch.tensor([single_token(model, wrongs[i]) for i in keep]),
        [clean[i] for i in keep],
        [corrupted[i] for i in keep],
    )


def load_json(name: str) -> dict:
    return json.loads((Path(__file__).parents[1] / "data" / name).read_text())


TASKS: dict[str, Callable[..., TaskBatch]] = {}


def register(name: str):
    def deco(fn):
        TASKS[name] = fn
        return fn

    return deco


def check_tasks(names: Sequence[str]) -> None:
    """Every name is a registered task (checked before any work, so nothing is half written);
    ``circuits.tasks`` registers the bundled ones when it is imported."""
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise InputError(f"unknown task(s) {names}; available: {', '.join(sorted(TASKS))}")


def make_task(model: TransformerBridge, name: str, n: int = 40, seed: int = 0) -> TaskBatch:
    check_tasks([name])
    if n < 2:
        raise InputError("a task needs at least 2 prompts")
    return TASKS[name](model, n=n, seed=seed)
