"""Needle-in-a-haystack tests (Wu et al. 2024, arXiv 2404.15574; docs/methods.md section 1).

A test puts a needle sentence at a relative depth of a filler text (the bundled public-domain
haystack, see ``interp/data/README.md``) so that the whole prompt is ``length`` tokens, then asks
``Based on the content of the book, Question: {q}\\nAnswer:``. Chat models get the Retrieval_Head
code's chat form (``<book>{context}</book>\\n...`` as the user turn, generation prompt added);
models without a chat template get the plain form ``{context}Based on the content...``.

Deviation from the official code: prompts are assembled from token ids (template prefix +
haystack[:at] + "\\n" + needle + "\\n" + haystack[at:] + question), so the needle span is known
exactly instead of being searched with a 90 %-overlap heuristic, and ``length`` counts the whole
prompt (the official code trims the haystack to ``length - 200`` and lets the question add to it).
Like the official code, the needle is placed after the last sentence end before the requested
depth (depth 100 % puts it at the very end), and the copy span of the retrieval score and the
ROUGE reference are the needle's short answer (``answer``, official ``real_needle``), not the
whole sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np
from rouge_score import rouge_scorer
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError

QUESTION = "Based on the content of the book, Question: {question}\nAnswer:"
_PLACEHOLDER = "\x00CONTEXT\x00"
_SENTENCE_END = (".", "!", "?", "\n", ".”", ".’", "?”", "!”")


@dataclass(frozen=True)
class Needle:
    needle: str
    question: str
    answer: str  # the short answer inside ``needle`` (official code: ``real_needle``)

    def __post_init__(self) -> None:
        if not self.answer or self.answer not in self.needle:
            raise InputError(
                f"a needle's answer must be a non-empty part of its sentence; got answer "
                f"{self.answer!r} for needle {self.needle!r}"
            )


@dataclass
class NeedleTest:
    """One prompt: token ids, the answer's token span ``[start, end)`` (the copy span of the
    retrieval score, as the official code's ``real_needle`` span) and the whole needle
    sentence's span ``[needle_start, needle_end)``."""

    length: int
    depth: float  # percent, 0..100
    needle_index: int
    needle: Needle
    ids: list[int]
    start: int
    end: int
    needle_start: int
    needle_end: int

    @property
    def key(self) -> str:
        return f"L{self.length}-D{self.depth:g}-N{self.needle_index}"


def load_needles() -> list[Needle]:
    text = (files("interp") / "data" / "needles.jsonl").read_text()
    return [Needle(**json.loads(line)) for line in text.splitlines() if line.strip()]


def haystack_text() -> str:
    return (files("interp") / "data" / "haystack.txt").read_text()


@cache
def _haystack_ids(tokenizer) -> list[int]:
    return tokenizer(haystack_text(), add_special_tokens=False)["input_ids"]


def _frame(model: TransformerBridge, question: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the context for ``question``."""
    tok = model.tokenizer
    q = QUESTION.format(question=question)
    if getattr(tok, "chat_template", None):
        user = f"<book>{_PLACEHOLDER}</book>\n{q}"
        text = tok.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        before, after = text.split(_PLACEHOLDER)
        return (
            tok(before, add_special_tokens=False)["input_ids"],
            tok(after, add_special_tokens=False)["input_ids"],
        )
    bos = [tok.bos_token_id] if model.cfg.tokenizer_prepends_bos else []
    return bos, tok(q, add_special_tokens=False)["input_ids"]


def build_test(
    model: TransformerBridge, needle: Needle, length: int, depth: float, needle_index: int = 0
) -> NeedleTest:
    """Prompt of exactly ``length`` tokens with ``needle`` at ``depth`` percent of the context."""
    tok = model.tokenizer
    before, after = _frame(model, needle.question)
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    body = tok(needle.needle, add_special_tokens=False)["input_ids"]
    n_hay = length - len(before) - len(after) - len(body) - 2 * len(newline)
    hay = _haystack_ids(tok)
    if n_hay < 16:
        raise InputError(
            f"context length {length} leaves no room for the haystack (question and needle "
            f"take {length - n_hay} tokens); use a length of at least {length - n_hay + 64}"
        )
    if n_hay > len(hay):
        raise InputError(
            f"context length {length} needs {n_hay} haystack tokens; the bundled haystack has "
            f"{len(hay)}"
        )
    if not 0 <= depth <= 100:
        raise InputError(f"depth must be a percentage in [0, 100], got {depth}")
    ctx = hay[:n_hay]
    at = n_hay if depth >= 100 else int(n_hay * depth / 100)
    while 0 < at < n_hay and not tok.decode(ctx[at - 1 : at]).endswith(_SENTENCE_END):
        at -= 1
    start = len(before) + at + len(newline)
    ids = before + ctx[:at] + newline + body + newline + ctx[at:] + after
    a0, a1 = answer_span(tok, body, needle.answer)
    return NeedleTest(
        length, float(depth), needle_index, needle, ids, start + a0, start + a1,
        start, start + len(body),
    )  # fmt: skip


def answer_span(tokenizer, body: list[int], answer: str) -> tuple[int, int]:
    """The shortest token range ``[i, j)`` of the needle sentence ``body`` whose text contains
    ``answer`` (the earliest if several): the answer's tokens as they occur in the prompt."""
    best: tuple[int, int] | None = None
    for i in range(len(body)):
        for j in range(i + 1, len(body) + 1):
            if best is not None and j - i >= best[1] - best[0]:
                break
            if answer in tokenizer.decode(body[i:j]):
                best = (i, j)
                break
    if best is None:
        raise InputError(f"answer {answer!r} does not occur in the tokenized needle")
    return best


def grid(kind: str, n_ctx: int) -> tuple[list[int], list[float]]:
    """Context lengths and depths of a named grid, scaled to the model's context ``n_ctx``.

    ``small`` (default, CPU minutes): 256, 512, 1024 tokens x 5 depths. ``large``: 8 lengths
    from 1k up to min(n_ctx, 8192) x 10 depths (0..100, as the official grid's depths).
    """
    if kind == "small":
        room = n_ctx - 64  # leave room for the answer
        lengths = [n for n in (256, 512, 1024) if n <= room] or [room]
        return lengths, [0.0, 25.0, 50.0, 75.0, 100.0]
    if kind == "large":
        top = min(n_ctx, 8192) - 64  # leave room for the answer
        lengths = sorted({int(x) for x in np.linspace(min(1024, top), top, 8).round()})
        return lengths, [float(d) for d in np.linspace(0, 100, 10).round()]
    raise InputError(f"unknown grid {kind!r}: use 'small' or 'large'")


_scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def rouge1_recall(reference: str, response: str) -> float:
    """ROUGE-1 recall of ``response`` against ``reference`` (rouge-score, stemmed, as official)."""
    return float(_scorer.score(reference, response)["rouge1"].recall)
