"""KV-cache greedy decoding through the bridge (vs full recomputation) and uniform-attention
masking (vs the hand-computed uniform pattern)."""

from __future__ import annotations

import pytest
import torch

from interp.ablation import uniform_attention_hooks
from interp.errors import InputError
from interp.generate import greedy_decode
from interp.tokens import tokenize


def _greedy_full(model, ids, n):
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            out.append(nxt)
            ids.append(nxt)
    return out


@pytest.mark.parametrize("name", ["tiny", pytest.param("smol", marks=pytest.mark.real_model)])
def test_cached_decoding_equals_full_recompute(name, request):
    model = request.getfixturevalue(name)
    ids = model.tokenizer("The capital of France is Paris. The capital of Italy is")["input_ids"]
    assert greedy_decode(model, ids, max_new_tokens=8) == _greedy_full(model, ids, 8)


def test_full_recompute_decoding_carries_a_calibration(tiny):
    """use_cache=False equals the plain full-recompute loop, also with a calibration applied
    (which the KV-cached decoder refuses: it sees one query row per step)."""
    from interp.calibration import CalibrationConfig, calibrated

    ids = tiny.tokenizer("the cat sat on the mat and the dog")["input_ids"]
    assert greedy_decode(tiny, ids, max_new_tokens=5, use_cache=False) == _greedy_full(tiny, ids, 5)
    cfg = CalibrationConfig("tiny", [(0, 1), (1, 2)])
    with calibrated(tiny, cfg):
        got = greedy_decode(tiny, ids, max_new_tokens=5, use_cache=False)
        assert got == _greedy_full(tiny, ids, 5)
        with pytest.raises(InputError, match="KV-cached"):
            greedy_decode(tiny, ids, max_new_tokens=2)


def test_step_hooks_see_one_query_row(tiny):
    ids = tiny.tokenizer("hello there")["input_ids"]
    shapes = []
    hook = ("blocks.1.attn.hook_pattern", lambda x, hook: shapes.append(tuple(x.shape)))
    greedy_decode(tiny, ids, max_new_tokens=3, step_hooks=[hook])
    n = len(ids)
    assert shapes == [(1, 4, 1, n), (1, 4, 1, n + 1), (1, 4, 1, n + 2)]


def test_decode_rejects_bad_prompts(tiny):
    with pytest.raises(InputError):
        greedy_decode(tiny, [5], max_new_tokens=2)


def test_uniform_attention_pattern(tiny):
    batch = tokenize(tiny, ["a longer prompt here", "short"])
    got = {}

    def grab(x, hook):
        got[hook.name] = x.detach().clone()

    names = [f"blocks.{la}.attn.hook_pattern" for la in range(2)]
    with torch.no_grad():
        tiny.run_with_hooks(
            batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=[(n, grab) for n in names]
        )
        clean = dict(got)
        hooks = uniform_attention_hooks(tiny, [(1, 2), (0, 0)])
        tiny.run_with_hooks(
            batch.tokens,
            attention_mask=batch.attention_mask,
            fwd_hooks=hooks + [(n, grab) for n in names],
        )
    for b, n in enumerate(batch.lengths):
        for layer, head in [(1, 2), (0, 0)]:
            a = got[f"blocks.{layer}.attn.hook_pattern"][b, head, :n, :n]
            expected = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
            torch.testing.assert_close(a, expected)
    # an unmasked head of an unmasked layer is unchanged... of layer 0, heads 1-3 too
    torch.testing.assert_close(
        got["blocks.0.attn.hook_pattern"][:, 1:], clean["blocks.0.attn.hook_pattern"][:, 1:]
    )


def test_uniform_hooks_reject_missing_heads(tiny):
    with pytest.raises(InputError, match="do not exist"):
        uniform_attention_hooks(tiny, [(5, 0)])


def test_first_key_mask_renormalises_rows_without_key_zero(tiny):
    """Hiding key 0 from a head gives, for every query after it, the clean row with key 0
    removed and renormalised (the softmax of the other scores); query 0 and other heads keep
    their clean rows. Reference: the unhooked run's own pattern."""
    from interp.ablation import first_key_mask_hooks

    batch = tokenize(tiny, ["a longer prompt here", "short"])
    got = {}

    def grab(x, hook):
        got[hook.name] = x.detach().clone()

    name = "blocks.1.attn.hook_pattern"
    with torch.no_grad():
        tiny.run_with_hooks(
            batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=[(name, grab)]
        )
        clean = got[name]
        hooks = first_key_mask_hooks(tiny, [(1, 2)])
        tiny.run_with_hooks(
            batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=[*hooks, (name, grab)]
        )
    hidden = got[name]
    for b, n in enumerate(batch.lengths):
        a, c = hidden[b, 2, :n, :n], clean[b, 2, :n, :n]
        expected = c.clone()
        expected[1:, 0] = 0
        expected[1:] /= expected[1:].sum(-1, keepdim=True)
        torch.testing.assert_close(a, expected)
        assert a[0, 0] == 1.0
    torch.testing.assert_close(hidden[:, [0, 1, 3]], clean[:, [0, 1, 3]])
    with pytest.raises(InputError, match="do not exist"):
        first_key_mask_hooks(tiny, [(0, 9)])
