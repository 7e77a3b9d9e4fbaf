"""Inputs the detectors run on: fixed-length text windows and repeated random tokens."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.attention import run_heads
from interp.errors import InputError
from interp.inputs.prompts import load_prompts
from interp.tokens import TokenBatch, framed_windows, from_token_ids, special_frame

UNKNOWN_LIMIT = 0.5  # text the tokenizer maps mostly to its unknown token measures nothing


def unknown_share(model: TransformerBridge, ids: list[int]) -> float:
    """Share of ``ids`` that are the tokenizer's unknown (or padding) token."""
    tok = model.tokenizer
    unknown = {tok.unk_token_id, tok.pad_token_id} - {None}
    return sum(t in unknown for t in ids) / max(1, len(ids))


def reads_english(model: TransformerBridge) -> bool:
    """Whether the tokenizer reads the bundled English text as mostly known tokens (a toy
    vocabulary of task words does not)."""
    from interp.inputs.needles import haystack_text

    ids = model.tokenizer(haystack_text()[:2000], add_special_tokens=False)["input_ids"]
    return unknown_share(model, ids) <= UNKNOWN_LIMIT


def refuse_unknown_text(model: TransformerBridge, samples: list[list[int]]) -> list[list[int]]:
    """The samples, unless the tokenizer read the bundled English text as mostly unknown
    tokens (a model whose vocabulary is not English words, e.g. a planted toy model): every
    position would be the same token, and scores on it mean nothing."""
    share = unknown_share(model, [t for s in samples for t in s])
    if share > UNKNOWN_LIMIT:
        raise InputError(
            f"the tokenizer of {model.cfg.model_name} reads {share:.0%} of the bundled English "
            "text as its unknown token: this model's vocabulary is not English text; run the "
            "detector with inputs='model_prompts' (the model folder's prompts.txt) instead "
            "(interp scan: --set DETECTOR.inputs=model_prompts)"
        )
    return samples


def text_windows(model: TransformerBridge, n_tokens: int = 64, max_windows: int = 16) -> TokenBatch:
    """Consecutive ``n_tokens``-token windows of the bundled prompt text (joined by newlines),
    or of the bundled haystack text when the prompts are shorter than one window.

    Gu et al. measure sinks on 64-token inputs; windows of one length keep s_j comparable.
    """
    from interp.inputs.needles import haystack_text

    windows: list[list[int]] = []
    for text in ("\n".join(load_prompts()), haystack_text()):
        windows = framed_windows(model.tokenizer, text, n_tokens)
        if windows:
            break
    if not windows:
        raise InputError(f"the bundled texts have fewer than {n_tokens} tokens")
    return from_token_ids(model, refuse_unknown_text(model, windows[:max_windows]))


def text_samples(model: TransformerBridge, n_tokens: int = 64, max_samples: int = 32) -> TokenBatch:
    """Separate natural-text samples, each tokenized on its own (with the tokenizer's special
    tokens, e.g. a BOS where it adds one) and cut to its first ``n_tokens`` tokens: the inputs of
    Gu et al.'s sink metric (official eval_sink_open_source.py: one text per sample, truncated
    to 64 tokens). A sample is one line of the bundled haystack text, or consecutive lines
    joined by newlines until it has ``n_tokens`` tokens."""
    from interp.inputs.needles import haystack_text

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
    return from_token_ids(model, refuse_unknown_text(model, samples))


INPUT_KINDS = ("text", "model_prompts")


def check_inputs(detector: str, inputs: str, kinds: tuple[str, ...] = INPUT_KINDS) -> str:
    if inputs not in kinds:
        raise InputError(
            f"{detector} inputs must be one of {', '.join(repr(k) for k in kinds)}, not {inputs!r}"
        )
    return inputs


def own_inputs(model: TransformerBridge, detector: Any) -> dict[str, str]:
    """``{"inputs": "model_prompts"}`` for a detector with an ``inputs`` option when the model
    cannot read the bundled English text and its folder ships its own prompts (``interp
    train-toy`` writes them), else ``{}`` (the published default inputs): the default of the
    scan, the dashboard and the sink detector's validation."""
    from interp.inputs.prompts import model_prompts_file

    takes = "inputs" in {f.name for f in fields(detector.Config)}
    if not takes or model_prompts_file(model) is None:
        return {}
    return {} if reads_english(model) else {"inputs": "model_prompts"}


def model_prompt_samples(
    model: TransformerBridge, n_tokens: int = 64, max_samples: int = 32, *, equal: bool = False
) -> TokenBatch:
    """The model folder's own prompts (``interp.inputs.prompts.model_prompts_file``: e.g. the task
    sequences ``interp train-toy`` writes), each tokenized on its own with the tokenizer's
    special tokens and cut to ``n_tokens``: the inputs for a model whose vocabulary is not
    English text. ``equal``: cut every sample to the shortest one's length."""
    from interp.inputs.prompts import model_prompts_file

    path = model_prompts_file(model)
    if path is None:
        raise InputError(
            f"inputs='model_prompts' needs a prompts.txt in the model folder "
            f"({model.cfg.model_name}); `interp train-toy` writes one, or use inputs='text'"
        )
    prefix, suffix = special_frame(model.tokenizer)
    size = n_tokens - len(prefix) - len(suffix)
    samples = []
    for prompt in load_prompts(path)[:max_samples]:
        ids = model.tokenizer(prompt, add_special_tokens=False)["input_ids"][:size]
        if ids:
            samples.append(prefix + ids + suffix)
    if not samples:
        raise InputError(f"{path} has no prompt with a token")
    if equal:
        shortest = min(len(s) for s in samples)
        keep = shortest - len(suffix)
        samples = [s[: len(s) - len(suffix)][:keep] + suffix for s in samples]
    return from_token_ids(model, samples)


def haystack_windows(model: TransformerBridge, n_tokens: int, n_windows: int) -> TokenBatch:
    """The first ``n_windows`` consecutive ``n_tokens``-token windows of the bundled haystack."""
    from interp.inputs.needles import haystack_text

    windows = framed_windows(model.tokenizer, haystack_text(), n_tokens)
    if len(windows) < n_windows:
        raise InputError(f"the bundled haystack has fewer than {n_windows} windows of {n_tokens}")
    return from_token_ids(model, refuse_unknown_text(model, windows[:n_windows]))


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
