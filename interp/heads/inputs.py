"""Inputs the detectors run on: fixed-length text windows and repeated random tokens."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.attention import run_heads
from interp.errors import InputError
from interp.prompts import load_prompts
from interp.tokens import TokenBatch, framed_windows, from_token_ids, special_frame


def text_windows(model: TransformerBridge, n_tokens: int = 64, max_windows: int = 16) -> TokenBatch:
    """Consecutive ``n_tokens``-token windows of the bundled prompt text (joined by newlines),
    or of the bundled haystack text when the prompts are shorter than one window.

    Gu et al. measure sinks on 64-token inputs; windows of one length keep s_j comparable.
    """
    from interp.heads.needle import haystack_text

    windows: list[list[int]] = []
    for text in ("\n".join(load_prompts()), haystack_text()):
        windows = framed_windows(model.tokenizer, text, n_tokens)
        if windows:
            break
    if not windows:
        raise InputError(f"the bundled texts have fewer than {n_tokens} tokens")
    return from_token_ids(model, windows[:max_windows])


def text_samples(model: TransformerBridge, n_tokens: int = 64, max_samples: int = 32) -> TokenBatch:
    """Separate natural-text samples, each tokenized on its own (with the tokenizer's special
    tokens, e.g. a BOS where it adds one) and cut to its first ``n_tokens`` tokens: the inputs of
    Gu et al.'s sink metric (official eval_sink_open_source.py: one text per sample, truncated
    to 64 tokens). A sample is one line of the bundled haystack text, or consecutive lines
    joined by newlines until it has ``n_tokens`` tokens."""
    from interp.heads.needle import haystack_text

    prefix, suffix = special_frame(model.tokenizer)
    size = n_tokens - len(prefix) - len(suffix)  # an encoder's [SEP] survives the truncation
    samples: list[list[int]] = []
    lines: list[str] = []
    for line in haystack_text().splitlines():
        if not line.strip():
            continue
        lines.append(line)
        ids = model.tokenizer("\n".join(lines), add_special_tokens=False)["input_ids"]
        if len(ids) >= size:
            samples.append(prefix + ids[:size] + suffix)
            lines = []
            if len(samples) == max_samples:
                break
    if not samples:
        raise InputError(f"the bundled haystack has no sample of {n_tokens} tokens")
    return from_token_ids(model, samples)


def haystack_windows(model: TransformerBridge, n_tokens: int, n_windows: int) -> TokenBatch:
    """The first ``n_windows`` consecutive ``n_tokens``-token windows of the bundled haystack."""
    from interp.heads.needle import haystack_text

    windows = framed_windows(model.tokenizer, haystack_text(), n_tokens)
    if len(windows) < n_windows:
        raise InputError(f"the bundled haystack has fewer than {n_windows} windows of {n_tokens}")
    return from_token_ids(model, windows[:n_windows])


def repeated_random_tokens(
    model: TransformerBridge, *, n_seqs: int = 8, half_len: int = 32, seed: int = 0
) -> TokenBatch:
    """``n_seqs`` sequences of ``half_len`` random non-special tokens, each repeated twice."""
    special = set(model.tokenizer.all_special_ids)
    vocab = int(model.cfg.d_vocab)
    allowed = torch.tensor([t for t in range(vocab) if t not in special])
    gen = torch.Generator().manual_seed(seed)
    first = allowed[torch.randint(len(allowed), (n_seqs, half_len), generator=gen)]
    return from_token_ids(model, torch.cat([first, first], dim=1).tolist())


def all_patterns(
    model: TransformerBridge, batch: TokenBatch, batch_size: int = 8
) -> Float[Tensor, "layer batch head query key"]:
    """Patterns of every layer, stacked (small inputs only: this is the dense path)."""
    run = run_heads(model, batch, hooks=["pattern"], batch_size=batch_size)
    return torch.stack([run.pattern(layer) for layer in range(int(model.cfg.n_layers))])
