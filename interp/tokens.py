"""Turning prompts into padded token batches, with checks a user can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import no_type_check

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError


@dataclass
class TokenBatch:
    """Right-padded tokens of several prompts.

    Right padding keeps every real token at its own position, so for causal models the
    activations of real tokens equal those of an unpadded run.
    """

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]  # 1 = real token, 0 = padding
    lengths: list[int]
    str_tokens: list[list[str]]  # each token decoded on its own (readable: " cat", not "Ġcat")

    def __repr__(self) -> str:
        shown = ["".join(t)[:40] for t in self.str_tokens[:3]]
        more = f" and {len(self.lengths) - 3} more" if len(self.lengths) > 3 else ""
        return (
            f"TokenBatch({len(self.lengths)} prompt(s), lengths {self.lengths[:8]}"
            f"{'...' if len(self.lengths) > 8 else ''}, tokens {list(self.tokens.shape)}: "
            f"{shown}{more})"
        )

    def rows(self, start: int, stop: int) -> TokenBatch:
        """Prompts ``start:stop``, trimmed to their own longest length."""
        lengths = self.lengths[start:stop]
        width = max(lengths)
        return TokenBatch(
            self.tokens[start:stop, :width],
            self.attention_mask[start:stop, :width],
            lengths,
            self.str_tokens[start:stop],
        )


@no_type_check  # validates user input itself (clear InputError)
def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """Normalise prompts to a non-empty list of non-empty strings, or raise ``InputError``."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise InputError("no prompts given: pass a string or a non-empty list of strings")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompt {i} is a {type(p).__name__}, not a string")
        if not p.strip():
            raise InputError(f"prompt {i} is empty; every prompt needs at least one token")
    return prompts


@no_type_check  # validates user input itself (clear InputError)
def tokenize(
    model: TransformerBridge, prompts: str | Sequence[str], *, max_length: int | None = None
) -> TokenBatch:
    """Tokenize with the model's own tokenizer (no extra BOS), right-padded.

    Raises ``InputError`` for empty input or a prompt longer than ``max_length`` tokens
    (default: the model's context length).
    """
    prompts = check_prompts(prompts)
    tok = model.tokenizer
    limit = int(max_length or model.cfg.n_ctx)
    fast = bool(getattr(tok, "is_fast", False))
    encs = [tok(p, add_special_tokens=True, return_offsets_mapping=fast) for p in prompts]
    ids = [e["input_ids"] for e in encs]
    for i, seq in enumerate(ids):
        if not seq:
            raise InputError(f"prompt {i} tokenizes to nothing; give it some text")
        if len(seq) > limit:
            raise InputError(
                f"prompt {i} has {len(seq)} tokens, more than the limit of {limit} "
                f"(context length of {model.cfg.model_name}: {model.cfg.n_ctx}); shorten it"
            )
    batch = _pad(ids, int(tok.pad_token_id), tok)
    if fast:  # byte pieces of one character decode to U+FFFD alone: show the character
        for b, (p, e) in enumerate(zip(prompts, encs, strict=True)):
            batch.str_tokens[b] = readable_tokens(batch.str_tokens[b], p, e["offset_mapping"])
    return batch


def display_token(tok: str) -> str:
    """A token made visible: newline -> ``\\n``, tab -> ``\\t``, leading space -> ``␣``."""
    tok = tok.replace("\n", "\\n").replace("\t", "\\t")
    return "␣" + tok[1:] if tok.startswith(" ") else tok


CONTINUATION = "\u21aa"  # shown for a byte piece whose character an earlier piece showed


def readable_tokens(pieces: list[str], text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """Token strings for display: a piece that decodes to U+FFFD on its own (one byte of a
    multi-byte character in byte-level BPE) shows the characters of its offsets that no earlier
    piece showed; a piece with nothing new (the second byte of "ü") shows ``CONTINUATION``, so
    "über" reads "ü", "↪", "ber" and not "ü", "ü", "ber"."""
    out = []
    shown_to = 0
    for piece, (a, b) in zip(pieces, offsets, strict=True):
        if "\ufffd" in piece and b > a:
            new = text[max(a, shown_to) : b]
            out.append(new or CONTINUATION)
        else:
            out.append(piece)
        shown_to = max(shown_to, b)
    return out


def _pad(ids: list[list[int]], pad_id: int, tok) -> TokenBatch:
    n = max(len(s) for s in ids)
    tokens = torch.full((len(ids), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), n), dtype=torch.long)
    for b, seq in enumerate(ids):
        tokens[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[b, : len(seq)] = 1
    str_tokens = [[tok.decode([i]) for i in seq] for seq in ids]
    return TokenBatch(tokens, mask, [len(s) for s in ids], str_tokens)


def from_token_ids(model: TransformerBridge, ids: Sequence[Sequence[int]]) -> TokenBatch:
    """A ``TokenBatch`` from token id lists (e.g. repeated random tokens), right-padded."""
    seqs = [list(map(int, s)) for s in ids]
    if not seqs or any(len(s) == 0 for s in seqs):
        raise InputError("token id lists must be non-empty")
    vocab = int(model.cfg.d_vocab)
    bad = [t for s in seqs for t in s if not 0 <= t < vocab]
    if bad:
        raise InputError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab})")
    if max(len(s) for s in seqs) > model.cfg.n_ctx:
        raise InputError(f"a sequence is longer than the context length {model.cfg.n_ctx}")
    return _pad(seqs, int(model.tokenizer.pad_token_id), model.tokenizer)


@no_type_check  # validates user input itself (clear InputError)
def as_batch(model: TransformerBridge, prompts: str | Sequence[str] | TokenBatch) -> TokenBatch:
    """``prompts`` as a ``TokenBatch`` (tokenized unless it already is one)."""
    return prompts if isinstance(prompts, TokenBatch) else tokenize(model, prompts)


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix): the special token ids the tokenizer puts around one sequence, e.g.
    ([CLS], [SEP]) for BERT-style encoders, ([], []) for SmolLM2 (no BOS added)."""
    framed = tokenizer("a")["input_ids"]
    body = tokenizer("a", add_special_tokens=False)["input_ids"]
    for i in range(len(framed) - len(body) + 1):
        if framed[i : i + len(body)] == body:
            return list(framed[:i]), list(framed[i + len(body) :])
    return [], []


def framed_windows(tokenizer, text: str, n_tokens: int) -> list[list[int]]:
    """Consecutive windows of ``text`` of ``n_tokens`` tokens each, every one with the
    tokenizer's own special tokens (an encoder's [CLS] ... [SEP] in every window, not only
    around the whole text)."""
    prefix, suffix = special_frame(tokenizer)
    size = n_tokens - len(prefix) - len(suffix)
    if size < 1:
        raise InputError(f"windows of {n_tokens} tokens leave no room next to the special tokens")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [prefix + ids[i : i + size] + suffix for i in range(0, len(ids) - size + 1, size)]
