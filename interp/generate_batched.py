"""Greedy decoding of many prompts at once: one prefill per distinct prefix, batched steps.

A needle grid's prompts share long prefixes (the template and the haystack before the needle):
the prompts are taken in sorted order, so each one's longest common prefix with any earlier
prompt is its common prefix with the one before, and a single running KV cache is cut back to
that prefix and extended with the rest. The prefilled caches of a batch are then stacked with
left padding and decoded together, one token per sequence per step, through the plain Hugging
Face model (``interp.stats.capture.plain_model``, SDPA attention, the bridge's weights). At each
step every head's top key is read off the post-rotary q and k the layer runs on (softmax of the
scaled scores, padded keys masked, first index on ties), as the bridge's ``hook_pattern`` would
give it. Results equal ``interp.generate.greedy_decode`` one prompt at a time (tests); models
with sliding-window layers or hooks on the bridge take that path instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers.cache_utils import Cache, DynamicLayer

from interp.errors import InputError

#: prompt tokens held in one batch's stacked caches (SmolLM2: ~46 KB per token)
TOKEN_BUDGET = 16384
MAX_BATCH = 16


@dataclass
class Decoded:
    """One prompt's greedy continuation and, per step, each head's top key [layer, head]
    (a position in the prompt + generated sequence)."""

    tokens: list[int] = field(default_factory=list)
    top_keys: list[torch.Tensor] = field(default_factory=list)


def batched_decode_supported(model: TransformerBridge) -> bool:
    """Whether ``batched_greedy_decode`` can run this model (else use ``greedy_decode``)."""
    from interp.stats.capture import plain_model

    if any(point.fwd_hooks for point in model.hook_dict.values()):
        return False  # hooks on the bridge (a calibration) must act: the bridge decodes
    try:
        plain = plain_model(model)
    except InputError:
        return False
    cfg = plain.config
    layer_types = getattr(cfg, "layer_types", None) or []
    return not getattr(cfg, "sliding_window", None) and "sliding_attention" not in layer_types


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _cache_kw(module: torch.nn.Module) -> str:
    """The KV-cache argument's name: ``cache`` from transformers 5.2x on, before that
    ``past_key_values`` (the old name still works there, with a deprecation warning)."""
    params = inspect.signature(type(module).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _batches(order: list[int], lengths: list[int], budget: int) -> Iterator[list[int]]:
    """Consecutive prompts of ``order``, at most ``MAX_BATCH`` and ``budget`` padded tokens."""
    batch: list[int] = []
    longest = 0
    for i in order:
        if batch and (
            len(batch) == MAX_BATCH or (len(batch) + 1) * max(longest, lengths[i]) > budget
        ):
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, lengths[i])
    if batch:
        yield batch


class _Prefiller:
    """One running KV cache over prompts in sorted order: each prompt prefills only what it
    does not share with the previous one. ``tokens_prefilled`` counts the work done."""

    def __init__(
        self, base: torch.nn.Module, device: torch.device, n_layers: int, capacity: int
    ) -> None:
        self.base, self.device = base, device
        self.cache = _buffer_cache(n_layers, capacity)
        self.ids: list[int] = []
        self.tokens_prefilled = 0

    def __call__(self, ids: list[int]) -> list[Any]:
        """The cache layers holding exactly ``ids`` (valid until the next call)."""
        keep = common_prefix(self.ids, ids)  # a duplicate or a prefix of the last: all kept
        if self.cache.get_seq_length() > keep:
            self.cache.crop(keep - self.cache.get_seq_length())  # (tokens to remove, < 0)
        if keep < len(ids):
            rest = torch.tensor([ids[keep:]], device=self.device)
            pos = torch.arange(keep, len(ids), device=self.device)[None]
            kw = {_cache_kw(self.base): self.cache}
            self.base(input_ids=rest, position_ids=pos, use_cache=True, **kw)
        self.tokens_prefilled += len(ids) - keep
        self.ids = list(ids)
        return self.cache.layers


def _stacked(prefill: _Prefiller, prompts: list[list[int]], room: int) -> tuple[Cache, list[int]]:
    """Each prompt prefilled and copied into its row of one buffer cache, left-padded to the
    longest, with ``room`` free tokens; returns the cache and the pad of each row."""
    longest = max(len(p) for p in prompts)
    pads = [longest - len(p) for p in prompts]
    cache = _buffer_cache(len(prefill.cache.layers), longest + room)
    for row, (ids, pad) in enumerate(zip(prompts, pads, strict=True)):
        for buf, layer in zip(cache.layers, prefill(ids), strict=True):
            assert isinstance(buf, _BufferLayer)  # _buffer_cache's layers
            buf.put_row(row, len(prompts), pad, layer.keys, layer.values)
    return cache, pads


def _attend_one_query(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling, pads: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of a one-token query [b, hq, 1, d] over keys / values [b, hkv, n, d] with
    each row's left padding masked, computed as eager attention (softmax of the scaled scores
    in fp32, then the weighted values), without copying the keys per query head. Returns the
    output [b, 1, hq, d] (the layout transformers' attention functions return) and each head's
    top key in the row's own positions [b, hq] (argmax of the softmax, as the bridge's pattern:
    equal probabilities tie to the first key)."""
    b, hq, _, d = q.shape
    hkv, n = k.shape[1], k.shape[2]
    scale = d**-0.5 if scaling is None else float(scaling)
    qg = q.reshape(b, hkv, hq // hkv, d)  # query heads of one kv head side by side
    s = (qg.float() @ k.float().transpose(-1, -2)) * scale  # [b, hkv, rep, n]
    pad = torch.arange(n, device=q.device)[None] < pads[:, None]
    p = torch.softmax(s.masked_fill(pad[:, None, None], float("-inf")), -1)
    out = (p.to(v.dtype) @ v).reshape(b, 1, hq, d)
    return out, p.argmax(-1).reshape(b, hq) - pads[:, None]


class _BufferLayer(DynamicLayer):
    """A cache layer writing into one preallocated [b, h, capacity, d] buffer: a step adds its
    token in place instead of ``torch.cat`` copying the whole cache (DynamicLayer)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        shape = (*key_states.shape[:2], self.capacity, key_states.shape[-1])
        self._k, self._v = key_states.new_zeros(shape), value_states.new_zeros(shape)
        self.device, self.is_initialized = key_states.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise InputError(f"KV buffer of {self.capacity} tokens is full (needs {end})")
        self._k[..., self.length : end, :] = key_states
        self._v[..., self.length : end, :] = value_states
        self.length = end
        self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
        return self.keys, self.values

    def put_row(
        self, row: int, rows: int, start: int, keys: torch.Tensor, values: torch.Tensor
    ) -> None:
        """One prompt's [1, h, n, d] keys and values into batch row ``row`` of ``rows`` at
        positions ``start`` .. ``start + n`` (left padding before ``start`` stays 0)."""
        if not self.is_initialized:
            self.lazy_initialization(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
        end = start + keys.shape[-2]
        self._k[row, :, start:end] = keys[0]
        self._v[row, :, start:end] = values[0]
        self.length = max(self.length, end)
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0 and self.is_initialized:
            self.length = max(0, self.length + tokens_to_remove)
            self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]


def _buffer_cache(n_layers: int, capacity: int) -> Cache:
    return Cache(layers=[_BufferLayer(capacity) for _ in range(n_layers)])


def _decode_batch(
    plain: torch.nn.Module,
    cache: Cache,
    pads: torch.Tensor,
    *,
    first: list[int],
    positions: list[int],
    max_new_tokens: int,
    stop: Callable[[int], bool] | None,
    n_layers: int,
) -> list[Decoded]:
    """Greedy steps of one stacked batch until every row has stopped; ``n_layers`` > 0 records
    each step's top keys of layers 0..n_layers-1."""
    from interp.stats.capture import REPLACE_ATTENTION

    device = pads.device
    width = cache.get_seq_length()
    mask = (torch.arange(width, device=device)[None] >= pads[:, None]).long()
    pos = torch.tensor(positions, device=device)[:, None]
    inp = torch.tensor(first, device=device)[:, None]
    out = [Decoded() for _ in first]
    done = [False] * len(first)
    tops: dict[int, torch.Tensor] = {}

    def attend(layer: int, q, k, v, scaling) -> torch.Tensor:
        o, tops[layer] = _attend_one_query(q, k, v, scaling, pads)
        return o

    for _ in range(max_new_tokens):
        mask = torch.cat([mask, mask.new_ones(len(first), 1)], 1)
        token = REPLACE_ATTENTION.set(attend)
        try:
            logits = plain(input_ids=inp, attention_mask=mask, position_ids=pos, use_cache=True,
                           logits_to_keep=1, **{_cache_kw(plain): cache}).logits  # fmt: skip
        finally:
            REPLACE_ATTENTION.reset(token)
        nxt = logits[:, -1].argmax(-1)
        top = torch.stack([tops[la] for la in range(n_layers)]).cpu() if n_layers else None
        for row, tok in enumerate(nxt.tolist()):
            if done[row]:
                continue
            out[row].tokens.append(tok)
            if top is not None:
                out[row].top_keys.append(top[:, row])
            done[row] = stop is not None and stop(tok)
        if all(done):
            break
        inp, pos = nxt[:, None], pos + 1
    return out


@torch.no_grad()
def batched_greedy_decode(
    model: TransformerBridge,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 50,
    stop: Callable[[int], bool] | None = None,
    record_top_keys: bool = True,
    token_budget: int = TOKEN_BUDGET,
    on_done: Callable[[int, Decoded], None] | None = None,
) -> tuple[list[Decoded], dict[str, int]]:
    """Greedy continuations of every prompt (each as ``greedy_decode`` would give it alone).

    ``on_done(i, decoded)`` is called as each batch finishes (for checkpoints and progress).
    Returns the results in prompt order and counts: ``tokens_prefilled`` (distinct-prefix
    tokens run), ``prompt_tokens`` (what one prefill per prompt would run), ``batches``.
    """
    from interp.stats.capture import _base, plain_model

    if not batched_decode_supported(model):
        raise InputError(
            f"{model.cfg.model_name} cannot be decoded in batches here (sliding-window "
            "layers, hooks on the bridge, or no plain model); use interp.generate.greedy_decode"
        )
    n_ctx = int(model.cfg.n_ctx)
    ids = [[int(t) for t in p] for p in prompts]
    for p in ids:
        if len(p) < 2 or len(p) + max_new_tokens > n_ctx:
            raise InputError(
                f"every prompt needs 2 to {n_ctx - max_new_tokens} tokens (context {n_ctx} "
                f"minus {max_new_tokens} new ones); got one of {len(p)}"
            )
    plain = plain_model(model)
    base, device = _base(plain), next(plain.parameters()).device
    n_layers = int(model.cfg.n_layers)
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    prefill = _Prefiller(base, device, n_layers, max(len(p) for p in ids))
    results: list[Decoded | None] = [None] * len(ids)
    batches = 0
    for batch in _batches(order, [len(p) for p in ids], token_budget):
        batches += 1
        cache, pads = _stacked(prefill, [ids[i][:-1] for i in batch], max_new_tokens)
        rows = _decode_batch(
            plain, cache, torch.tensor(pads, device=device),
            first=[ids[i][-1] for i in batch], positions=[len(ids[i]) - 1 for i in batch],
            max_new_tokens=max_new_tokens, stop=stop, n_layers=n_layers if record_top_keys else 0,
        )  # fmt: skip
        for i, d in zip(batch, rows, strict=True):
            results[i] = d
            if on_done is not None:
                on_done(i, d)
    counts = {
        "tokens_prefilled": prefill.tokens_prefilled,
        "prompt_tokens": sum(len(p) - 1 for p in ids),
        "batches": batches,
    }
    return [r for r in results if r is not None], counts
