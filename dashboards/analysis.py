"""Model computations behind the dashboard views (no Dash here, so they are tested directly).

Input limits: prompts of at most ``MAX_CHARS`` characters and ``MAX_TOKENS`` tokens; at most
``MAX_ABLATED`` ablated heads. Anything larger is an ``InputError`` that says the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.heads import KINDS, ablation_hooks
from interp.attention import run_heads
from interp.errors import InputError
from interp.hook_names import act_name
from interp.models.expressive import ea_weights
from interp.tokens import display_token, tokenize  # noqa: F401  (display_token: re-export)

MAX_CHARS = 6000
MAX_TOKENS = 512
MAX_ABLATED = 64


def check_prompt(model: TransformerBridge, prompt: str | None) -> list[int]:
    """Token ids of ``prompt`` after the limits are checked."""
    if prompt is None or not prompt.strip():
        raise InputError("type a prompt first (it is empty)")
    if len(prompt) > MAX_CHARS:
        raise InputError(
            f"the prompt has {len(prompt)} characters; the dashboard takes at most {MAX_CHARS}"
        )
    batch = tokenize(model, [prompt])
    n = batch.lengths[0]
    if n > MAX_TOKENS:
        raise InputError(
            f"the prompt has {n} tokens; the dashboard takes at most {MAX_TOKENS} (use "
            "`interp scan` or interp.stats for long contexts)"
        )
    return batch.tokens[0, :n].tolist()


def unknown_warning(tokenizer, ids: list[int]) -> str:
    """A sentence when most of a prompt's tokens are the tokenizer's unknown or padding token
    (a toy model's word list does not cover English: its map would be blank), else ""."""
    special = {t for t in (tokenizer.unk_token_id, tokenizer.pad_token_id) if t is not None}
    special -= {tokenizer.eos_token_id, tokenizer.bos_token_id} - {tokenizer.unk_token_id}
    bad = sum(i in special for i in ids)
    if not ids or bad * 2 <= len(ids):
        return ""
    names = "/".join(str(t) for t in (tokenizer.unk_token, tokenizer.pad_token) if t is not None)
    return (
        f"note: {bad} of this prompt's {len(ids)} tokens are {names}: this model's vocabulary "
        "does not cover the text, so the maps show little (a toy model reads its own task "
        "tokens: use a prompt from its prompts.txt)"
    )


def check_twin(
    model: TransformerBridge, prompt_ids: list[int], corrupted: str | None, use: str
) -> None:
    """A corrupted prompt with as many tokens as the prompt (``use``: what it is for)."""
    if not corrupted or not corrupted.strip():
        raise InputError(f"{use} needs a corrupted prompt (same token length)")
    c_ids = check_prompt(model, corrupted)
    if len(c_ids) != len(prompt_ids):
        raise InputError(
            f"the corrupted prompt has {len(c_ids)} tokens, the prompt {len(prompt_ids)}: "
            f"{use} goes position by position, so they must match"
        )


def check_head(model: TransformerBridge, layer, head) -> tuple[int, int]:
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    try:
        layer, head = int(layer), int(head)
    except (TypeError, ValueError):
        raise InputError(f"pick a head (layer and head are {layer!r}, {head!r})") from None
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(
            f"head L{layer}.H{head} does not exist: layers 0..{n_layers - 1}, "
            f"heads 0..{n_heads - 1}"
        )
    return layer, head


@dataclass
class LayerView:
    """One prompt through one layer: patterns and the vectors whose dot product scores them.

    ``pattern`` [head, query, key]; ``q``, ``k`` [head, pos, d_head] after rotary embedding when
    the model has it (the vectors actually dotted), kv heads expanded to query heads.
    """

    tokens: list[str]
    ids: list[int]
    pattern: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor


def layer_view(model: TransformerBridge, prompt: str, layer: int) -> LayerView:
    ids = check_prompt(model, prompt)
    rotary = act_name("rot_q", layer) in model.hook_dict
    qk = ["rot_q", "rot_k"] if rotary else ["q", "k"]
    run = run_heads(model, [prompt], hooks=["pattern", *qk], layers=[layer])
    n = run.lengths[0]
    tokens = [display_token(t) for t in run.batch.str_tokens[0][:n]]
    q = run[qk[0], layer][0, :n].transpose(0, 1)
    k = run[qk[1], layer][0, :n].transpose(0, 1)
    return LayerView(tokens, ids, run.pattern(layer)[0, :, :n, :n], q, k)


#: prompts up to this many tokens run once for every layer (all maps from one forward)
ALL_LAYERS_MAX_TOKENS = 128


def all_layer_views(model: TransformerBridge, prompt: str) -> list[LayerView]:
    """``layer_view`` of every layer from one forward (what switching layers reads)."""
    ids = check_prompt(model, prompt)
    n_layers = int(model.cfg.n_layers)
    rotary = act_name("rot_q", 0) in model.hook_dict
    qk = ["rot_q", "rot_k"] if rotary else ["q", "k"]
    run = run_heads(model, [prompt], hooks=["pattern", *qk])
    n = run.lengths[0]
    tokens = [display_token(t) for t in run.batch.str_tokens[0][:n]]
    return [
        LayerView(tokens, ids, run.pattern(la)[0, :, :n, :n],
                  run[qk[0], la][0, :n].transpose(0, 1), run[qk[1], la][0, :n].transpose(0, 1))
        for la in range(n_layers)
    ]  # fmt: skip


def ea_pattern(q: torch.Tensor, k: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Expressive-attention weights from the same q, k (docs/methods.md section 5).

    s = (q.k / sqrt(d))^2, a = s / (1 + s), masked entries set to 0 after the nonlinearity, then
    each row divided by its sum. q, k: [pos, d]; returns [query, key].
    """
    dots = (q @ k.T) / math.sqrt(q.shape[-1])
    visible = torch.ones_like(dots, dtype=torch.bool)
    return ea_weights(dots, visible.tril() if causal else visible)


def softmax_pattern(q: torch.Tensor, k: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Dot-product attention softmax(q.k / sqrt(d)) from q, k [pos, d] (masked: -inf)."""
    dots = (q @ k.T) / math.sqrt(q.shape[-1])
    if causal:
        dots = dots.masked_fill(~torch.ones_like(dots, dtype=torch.bool).tril(), float("-inf"))
    return dots.softmax(-1)


def parse_heads(model: TransformerBridge, labels: list[str] | None) -> list[tuple[int, int]]:
    """``["L3.H1", ...]`` -> [(3, 1), ...] (checked)."""
    heads = []
    for label in labels or []:
        try:
            la, h = label.upper().removeprefix("L").split(".H")
        except ValueError:
            raise InputError(f"{label!r} is not a head; write heads as L<layer>.H<head>") from None
        heads.append(check_head(model, la, h))
    if len(heads) > MAX_ABLATED:
        raise InputError(f"{len(heads)} heads chosen; ablate at most {MAX_ABLATED} at once")
    return heads


def first_token(model: TransformerBridge, text: str | None) -> int | None:
    """The id of the first token of ``text`` (None for empty text)."""
    if not text:
        return None
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"{text!r} has no tokens")
    return int(ids[0])


@dataclass
class AblationView:
    tokens_clean: torch.Tensor  # [vocab] next-token log-probs, clean
    tokens_ablated: torch.Tensor  # [vocab] next-token log-probs with the heads ablated
    logits_clean: torch.Tensor  # [vocab]
    logits_ablated: torch.Tensor


@torch.no_grad()
def ablation_view(
    model: TransformerBridge,
    prompt: str,
    heads: list[tuple[int, int]],
    kind: str,
    *,
    means: dict | None = None,
    corrupted: str | None = None,
) -> AblationView:
    """Next-token distribution of ``prompt`` clean and with ``heads`` ablated (``kind``)."""
    ids = check_prompt(model, prompt)
    if kind not in KINDS:
        raise InputError(f"unknown ablation {kind!r}; use one of {', '.join(KINDS)}")
    tokens = torch.tensor([ids])
    clean = model(tokens)[0, -1].float()
    if not heads:
        ablated = clean
    else:
        extra = {}
        if kind == "resample":
            check_twin(model, ids, corrupted, "resample ablation")
            extra["corrupted"] = [corrupted]
        if kind == "mean":
            extra["means"] = means
        hooks = ablation_hooks(model, heads, kind, **extra)
        with model.hooks(fwd_hooks=hooks):
            ablated = model(tokens)[0, -1].float()
    return AblationView(clean.log_softmax(-1), ablated.log_softmax(-1), clean, ablated)
