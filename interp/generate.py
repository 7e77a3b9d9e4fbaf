"""Greedy decoding with a KV cache through the transformer-lens bridge, with hooks.

Two kinds of hooks: ``fwd_hooks`` run on the prompt pass and on every decoding step (e.g. a head
ablation); ``step_hooks`` run only on decoding steps, where each attention pattern has a single
query row ``[batch, head, 1, key]`` (e.g. recording where each head looks while it generates).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError

Hook = tuple[str, Callable]


def newline_or_eos(model: TransformerBridge) -> Callable[[int], bool]:
    """Stop after EOS or any token whose text contains a newline. The Retrieval_Head code stops
    on the newline token only; byte-level BPE vocabularies fold newlines into other tokens
    (".\n") and chat models end their turn with EOS, so we stop on both."""
    tok = model.tokenizer
    eos = {i for i in (tok.eos_token_id, getattr(tok, "pad_token_id", None)) if i is not None}

    def stop(token_id: int) -> bool:
        return token_id in eos or "\n" in tok.decode([token_id])

    return stop


def _plain_prefill(model: TransformerBridge, ids: torch.Tensor) -> Any | None:
    """The KV cache of ``ids`` from the same weights run as a plain Hugging Face model with
    PyTorch's scaled-dot-product attention (``interp.stats.capture.plain_model``), so a long
    prompt never builds the bridge's eager [head, n, n] patterns (2.4 GB per layer at 8k
    tokens for SmolLM2). None where the model cannot be rebuilt that way or the bridge carries
    hooks of its own (the bridge then prefills)."""
    from interp.stats.capture import plain_model

    if any(point.fwd_hooks for point in model.hook_dict.values()):
        return None  # hooks already on the bridge (e.g. apply_calibration) must see the prompt
    try:
        plain = plain_model(model)
    except InputError:
        return None
    return plain(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values


@torch.no_grad()
def greedy_decode(
    model: TransformerBridge,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int = 50,
    stop: Callable[[int], bool] | None = None,
    fwd_hooks: Sequence[Hook] = (),
    step_hooks: Sequence[Hook] = (),
    on_step: Callable[[int], None] | None = None,
    use_cache: bool = True,
) -> list[int]:
    """Generate greedily after ``prompt_ids`` (one sequence); returns the new token ids.

    ``use_cache=False`` recomputes the whole sequence at every step (hooks and calibrations
    that need every query row, such as ``interp.calibration``, see full patterns; ``step_hooks``
    are then not allowed). Otherwise:

    The prompt minus its last token fills the KV cache (without ``fwd_hooks``: through the plain
    model with SDPA, no pattern; with them: through the bridge, so the hooks act on the prompt
    too); every step then feeds one token through the bridge, so
    step ``i`` consumes the previous token and produces token ``i`` (the first step consumes
    the prompt's last token). ``on_step(token_id)`` is called after each step, after the
    step hooks of that step have fired. Generation ends after ``max_new_tokens`` or at the
    first token for which ``stop`` is true (that token is included).
    """
    from interp.models.info import is_causal

    if not is_causal(model):
        raise InputError(
            f"{model.cfg.model_name} is not a causal language model (it attends in both "
            "directions); it cannot generate text"
        )
    ids = [int(i) for i in prompt_ids]
    if len(ids) < 2:
        raise InputError("greedy_decode needs a prompt of at least 2 tokens")
    if len(ids) + max_new_tokens > int(model.cfg.n_ctx):
        raise InputError(
            f"prompt of {len(ids)} tokens + {max_new_tokens} new tokens exceeds the context "
            f"length {model.cfg.n_ctx}; shorten the prompt"
        )
    device = next(model.original_model.parameters()).device
    prompt = torch.tensor([ids], device=device)
    out: list[int] = []
    if not use_cache:
        if step_hooks:
            raise InputError("step_hooks need the KV-cached decoder (use_cache=True)")
        with torch.no_grad(), model.hooks(fwd_hooks=list(fwd_hooks)):
            for _ in range(max_new_tokens):
                nxt = int(model(torch.tensor([ids + out], device=device))[0, -1].argmax())
                out.append(nxt)
                if on_step is not None:
                    on_step(nxt)
                if stop is not None and stop(nxt):
                    break
        return out
    with warnings.catch_warnings(), model.hooks(fwd_hooks=list(fwd_hooks)):
        # transformers >= 5.2x warns that past_key_values is now called cache; the bridge
        # API still takes past_key_values (interp.models.compat bridges the rename).
        warnings.simplefilter("ignore", FutureWarning)
        cache = None if fwd_hooks else _plain_prefill(model, prompt[:, :-1])
        if cache is None:  # hooks must see the prompt pass: the bridge runs it (eager patterns)
            _, cache = model(prompt[:, :-1], return_type="logits_and_cache", use_cache=True)
        inp = prompt[:, -1:]
        with model.hooks(fwd_hooks=list(step_hooks)):  # removes exactly these hooks at the end
            for _ in range(max_new_tokens):
                logits, cache = model(inp, past_key_values=cache, return_type="logits_and_cache")
                nxt = int(logits[0, -1].argmax())
                out.append(nxt)
                if on_step is not None:
                    on_step(nxt)
                if stop is not None and stop(nxt):
                    break
                inp = torch.tensor([[nxt]], device=device)
    return out
