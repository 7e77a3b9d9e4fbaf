"""Whole-model attention statistics on long inputs, without ever building a pattern.

transformer-lens' bridge computes every layer's attention eagerly (it materialises the
[batch, head, n, n] pattern to fire ``hook_pattern``), so an 8k-token pass of SmolLM2 needs
~2.4 GB per layer for the pattern alone, and caching all patterns ~70 GB. Here the same weights
run as a plain Hugging Face model (parameters shared with the bridge, no copy) whose attention is
an ``AttentionInterface`` function: it receives the post-rotary queries and keys of each layer
(the tensors behind ``hook_rot_q`` / ``hook_rot_k``), hands them to
``interp.stats.attention_stats`` and then runs PyTorch's scaled-dot-product attention, which on
one unpadded sequence uses a memory-efficient kernel. Prompts run one at a time (no padding), and
only the base model runs (no [n, vocab] logits).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from interp.errors import InputError
from interp.models.info import is_causal
from interp.models.meta import model_meta
from interp.stats.streaming import AttentionStats, attention_stats, reuse_workspace
from interp.tokens import TokenBatch, as_batch

ATTN_NAME = "interp_stats"
_RECORDER: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "interp_attention_recorder", default=None
)
_SLIDING: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "interp_sliding_window", default=None
)
#: replaces the attention computation: fn(layer, q, k, v, scaling) -> output [b, n, head, d]
#: (batched decoding computes each one-query row itself and reads its top key on the way)
REPLACE_ATTENTION: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "interp_replace_attention", default=None
)


#: ask the attention for each row's log-sum-exp (the recorder then gets ``lse=``)
_WANT_LSE: contextvars.ContextVar[bool] = contextvars.ContextVar("interp_want_lse", default=False)
#: keyword arguments of an attention call that do not change what it computes
_PLAIN_KWARGS = {
    "scaling", "dropout", "sliding_window", "position_ids", "cache_position", "use_cache",
    "output_attentions",
}  # fmt: skip


def attention_with_lse(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One unmasked (causal or full) attention call as SDPA runs it, through the torch op
    that also returns each row's log-sum-exp: (output [b, n, heads, d] as the Hugging Face
    attention functions return it, lse [b, q_heads, n] fp32, natural log of the scaled
    scores). CUDA: the flash op for fp16/bf16 (head dim <= 256), else the memory-efficient op;
    CPU: the flash kernel SDPA itself uses on CPU. Grouped-query keys are repeated as
    transformers' SDPA path does."""
    n, d = query.shape[2], query.shape[-1]
    scale = d**-0.5 if scaling is None else float(scaling)
    causal = bool(getattr(module, "is_causal", True)) and n > 1
    rep = query.shape[1] // key.shape[1]
    if rep > 1:
        key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
    aten = torch.ops.aten
    if not query.is_cuda:
        out, lse = aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, causal, scale=scale
        )
    else:
        got = None
        if query.dtype in (torch.float16, torch.bfloat16) and d <= 256 and d % 8 == 0:
            try:  # flash needs sm_80+; older cards take the memory-efficient op below
                got = aten._scaled_dot_product_flash_attention(
                    query, key, value, 0.0, causal, False, scale=scale
                )[:2]
            except RuntimeError:
                got = None
        if got is None:
            got = aten._scaled_dot_product_efficient_attention(
                query, key, value, None, True, 0.0, causal, scale=scale
            )[:2]
            got = (got[0], got[1][..., :n])  # its LSE is padded to a multiple of 32 rows
        out, lse = got
    return out.transpose(1, 2).contiguous(), lse


def _takes_lse_path(query, key, attention_mask, kwargs) -> bool:
    """Whether this call is one plain attention the LSE ops compute exactly as SDPA would:
    no mask tensor (one unpadded sequence), no sliding window, no dropout, no extra inputs
    (attention sinks, position bias, soft-capping), as many keys as queries."""
    return (
        attention_mask is None
        and not kwargs.get("sliding_window")
        and not kwargs.get("dropout")
        and not any(
            v is not None and v is not False for k, v in kwargs.items() if k not in _PLAIN_KWARGS
        )
        and not kwargs.get("output_attentions")
        and query.shape[2] == key.shape[2]
    )


def _stats_attention(module, query, key, value, attention_mask, *args, **kwargs):
    """SDPA attention that first reports (layer, post-rotary q, post-rotary k, scaling) and
    the layer's sliding window (the attention layers of Mistral, Qwen2 and Gemma pass their
    ``sliding_window`` to the attention function; None for full attention). When the
    statistics ask for it (``_WANT_LSE``) and the call is a plain one, the attention runs
    through the op that also returns the row log-sum-exps, and the recorder gets them."""
    record = _RECORDER.get()
    replace = REPLACE_ATTENTION.get()
    if record is not None:
        _SLIDING.set(kwargs.get("sliding_window"))
        if (
            _WANT_LSE.get()
            and replace is None
            and not args
            and _takes_lse_path(query, key, attention_mask, kwargs)
        ):
            out, lse = attention_with_lse(module, query, key, value, kwargs.get("scaling"))
            record(module.layer_idx, query, key, kwargs.get("scaling"), lse=lse)
            return out, None
        record(module.layer_idx, query, key, kwargs.get("scaling"))
    if replace is not None:
        return replace(module.layer_idx, query, key, value, kwargs.get("scaling")), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)


def layer_sliding_window() -> int | None:
    """The sliding window of the layer being recorded (inside a ``for_each_layer`` callback)."""
    return _SLIDING.get()


AttentionInterface.register(ATTN_NAME, _stats_attention)
# the mask SDPA needs: without a registered mask function transformers hands a custom attention
# no mask, and SDPA then runs plain causal attention, dropping a sliding window (Mistral)
AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


def plain_model(bridge: TransformerBridge) -> Any:
    """The bridge's Hugging Face model rebuilt without bridge components, sharing its weights,
    with ``interp_stats`` attention. Cached on the bridge."""
    meta = model_meta(bridge)
    cached = meta.plain_model
    if cached is not None:
        return cached
    if meta.attention == "ea":
        raise InputError(
            "this model uses expressive attention; the streaming statistics assume softmax "
            "(dot-product) attention. Use the dense path (interp.run_heads) on it instead."
        )
    hf: Any = bridge.original_model
    softcap = getattr(hf.config, "attn_logit_softcapping", None)
    if softcap:
        raise InputError(
            f"{bridge.cfg.model_name} soft-caps its attention scores ({softcap} * tanh(s / "
            f"{softcap}), Gemma-2); the streaming statistics assume plain softmax scores. Use "
            "the dense path on it (interp.run_heads), which runs the model's own attention"
        )
    config = type(hf.config).from_dict(hf.config.to_dict())
    config._attn_implementation = ATTN_NAME
    with torch.device("meta"):
        plain = type(hf)(config)
    tensors = _bridged_tensors(hf, [n for n, _ in [*plain.named_parameters(),
                                                   *plain.named_buffers()]])  # fmt: skip
    plain.load_state_dict(tensors, strict=False, assign=True)
    for name, buf in plain.named_buffers():  # non-persistent buffers (rotary inv_freq)
        if buf.is_meta and name in tensors:
            module_name, _, attr = name.rpartition(".")
            plain.get_submodule(module_name)._buffers[attr] = tensors[name]
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    unmapped = [n for n, t in [*plain.named_parameters(), *plain.named_buffers()] if t.is_meta]
    if unmapped:
        raise InputError(
            f"cannot rebuild {bridge.cfg.model_name} as a plain model for long inputs "
            f"(unmapped tensors: {unmapped[:3]}); use the dense path (shorter inputs)"
        )
    plain.eval()
    meta.plain_model = plain
    return plain


def _unwrap(module: Any) -> Any:
    while hasattr(module, "_original_component"):
        module = module._original_component
    return module


def _bridged_tensors(hf: Any, names: list[str]) -> dict[str, torch.Tensor]:
    """Each of a plain model's parameter / buffer ``names`` found in the bridged model ``hf``.

    The bridge wraps Hugging Face modules in components (the original under
    ``_original_component``) and may rename them (GPT-2's ``attn.c_attn`` sits under
    ``attn.qkv``, GPT-NeoX's ``attention.dense`` under ``attention.o``), so a name is resolved
    by walking the original attribute path and unwrapping every component on the way."""
    found = {}
    for name in names:
        obj = hf
        try:
            for part in name.split("."):
                obj = _unwrap(obj)
                obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        except (AttributeError, IndexError, TypeError):
            continue
        if isinstance(obj, torch.Tensor):
            found[name] = obj
    return found


def _base(model: Any) -> Any:
    return getattr(model, getattr(model, "base_model_prefix", "model"), model)


LayerFn = Callable[..., None]  # fn(layer, q, k, scaling[, lse=...])


@torch.no_grad()
def for_each_layer(
    model: TransformerBridge,
    ids: Sequence[int] | torch.Tensor,
    fn: LayerFn,
    layers: Sequence[int] | None = None,
    *,
    with_lse: bool = False,
) -> None:
    """Run one prompt (token ids, no padding) and call ``fn(layer, q, k, scaling)`` with each
    requested layer's post-rotary queries [1, q_heads, n, d] and keys [1, kv_heads, n, d]
    (the tensors behind ``hook_rot_q`` / ``hook_rot_k``) while the layer runs.

    No attention pattern is built: the layer itself runs PyTorch's scaled-dot-product
    attention, and the forward stops after the last requested layer. ``with_lse``: the layer
    runs the SDPA op that also returns each row's log-sum-exp, and ``fn`` gets it as
    ``lse=`` ([1, q_heads, n]; None on a layer that needs a mask, e.g. a sliding window).
    """
    n_layers = int(model.cfg.n_layers)
    wanted = set(range(n_layers) if layers is None else layers)
    if not wanted <= set(range(n_layers)):
        raise InputError(f"layers must be in 0..{n_layers - 1}, got {sorted(wanted)}")
    plain = plain_model(model)
    base = _base(plain)
    ids = torch.as_tensor(ids).reshape(1, -1).to(next(plain.parameters()).device)

    def record(layer: int, q: torch.Tensor, k: torch.Tensor, scaling, lse=None) -> None:
        if layer in wanted:
            if with_lse:
                fn(layer, q, k, scaling, lse=lse)
            else:
                fn(layer, q, k, scaling)

    token = _RECORDER.set(record)
    lse_token = _WANT_LSE.set(with_lse)
    try:
        last = max(wanted)
        with reuse_workspace():  # the statistics' score buffers serve every layer
            if last + 1 < n_layers:  # stop early: run only the blocks we need
                _run_until(base, ids, last + 1)
            else:
                base(input_ids=ids, use_cache=False)
    finally:
        _WANT_LSE.reset(lse_token)
        _RECORDER.reset(token)


def _fused_wanted(model: TransformerBridge, backend: str, fused: bool | None) -> bool:
    """Whether to take each row's LSE from the model's attention: when the statistics run
    on the triton backend (``auto`` on a CUDA model with Triton installed), or as asked."""
    if fused is not None:
        return fused
    if backend == "triton":
        return True
    if backend != "auto":
        return False
    from interp.kernels import triton_available

    return next(plain_model(model).parameters()).is_cuda and triton_available()


@torch.no_grad()
def model_attention_stats(
    model: TransformerBridge,
    prompts: str | Sequence[str] | TokenBatch,
    *,
    layers: Sequence[int] | None = None,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    progress: bool = False,
    fused: bool | None = None,
    **stats_options: Any,
) -> list[dict[int, AttentionStats]]:
    """``attention_stats`` of every requested layer for each prompt (one dict per prompt).

    Peak memory is the model, one sequence's activations and the statistics' working set
    (the torch backend's query chunk, or nothing extra with triton); no pattern is stored.
    Causal or bidirectional as the model is (``is_causal``). ``stats_options`` go to
    ``attention_stats`` (``sink_tokens``, ``window``, ``fai_window``, ``deterministic``).
    ``fused`` (default: on with the triton backend): each layer's attention returns its row
    log-sum-exps and the statistics take one pass (``interp.kernels.fused_stats``) instead
    of two; layers that need a mask (sliding window) keep the two passes.
    """
    batch = as_batch(model, prompts)
    causal = is_causal(model)
    with_lse = _fused_wanted(model, backend, fused)
    results = []
    for i in tqdm(range(len(batch.lengths)), desc="attention stats", disable=not progress):
        found: dict[int, AttentionStats] = {}

        def record(
            layer: int, q: torch.Tensor, k: torch.Tensor, scaling, lse=None, found=found
        ) -> None:
            found[layer] = attention_stats(
                q, k, causal=causal, scale=scaling, backend=backend,
                sliding_window=layer_sliding_window(), lse=lse, check_lse=False,
                **stats_options,
            ).to(device)  # fmt: skip

        ids = batch.tokens[i, : batch.lengths[i]]
        for_each_layer(model, ids, record, layers, with_lse=with_lse)
        results.append(found)
    return results


class _Stop(Exception):
    pass


def _run_until(base: Any, ids: torch.Tensor, n_blocks: int) -> None:
    """Run ``base`` and stop once block ``n_blocks - 1`` has finished."""
    layers = getattr(base, "layers", None)
    if layers is None or n_blocks >= len(layers):
        base(input_ids=ids, use_cache=False)
        return

    def stop(*_):
        raise _Stop

    handle = layers[n_blocks - 1].register_forward_hook(stop)
    try:
        base(input_ids=ids, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
