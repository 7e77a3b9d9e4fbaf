"""run_heads on the tiny model: caching only what is asked, padding, errors."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.errors import InputError


def test_only_requested_hooks_are_cached(tiny):
    run = interp.run_heads(tiny, "hello", hooks=["pattern", "q"], layers=[1])
    assert sorted(run.keys()) == ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_q"]
    run = interp.run_heads(tiny, "hello", hooks=["blocks.0.attn.hook_z"])
    assert run.keys() == ["blocks.0.attn.hook_z"] and run.logits is None
    with pytest.raises(KeyError, match="not cached"):
        run.pattern(0)


def test_shapes_and_gqa_expansion(tiny):
    run = interp.run_heads(tiny, ["hello there", "hi"], hooks=["pattern", "k", "v", "q", "z"])
    n = run.tokens.shape[1]
    assert run.pattern(0).shape == (2, 4, n, n)
    for h in ("q", "k", "v", "z"):
        assert run.get(h, 1).shape == (2, n, 4, 16)
    k = run.get("k", 0)
    assert torch.equal(k[:, :, 0], k[:, :, 1]) and torch.equal(k[:, :, 2], k[:, :, 3])
    assert not torch.equal(k[:, :, 0], k[:, :, 2])


def test_hook_names_and_tuple_access(tiny):
    """One helper builds hook names; run["pattern", 3] works; k/v expanded per query head live
    under a name the bridge never uses, and the bridge's own name explains where they are."""
    assert interp.act_name("pattern", 3) == "blocks.3.attn.hook_pattern"
    with pytest.raises(KeyError, match="unknown hook"):
        interp.act_name("patern", 3)
    run = interp.run_heads(tiny, "hello there", hooks=["pattern", "k"])
    assert torch.equal(run["pattern", 1], run["blocks.1.attn.hook_pattern"])
    assert torch.equal(run["pattern", 1], run.pattern(1))
    assert "blocks.0.attn.hook_k.per_query_head" in run.keys()
    with pytest.raises(KeyError, match="per query head"):
        run["blocks.0.attn.hook_k"]
    with torch.no_grad():
        _, cache = tiny.run_with_cache(run.tokens, names_filter=lambda n: n.endswith("hook_k"))
    own = cache["blocks.0.attn.hook_k"]  # the bridge's [batch, pos, kv_head, d_head]
    assert own.shape[2] == 2 and run["k", 0].shape[2] == 4
    torch.testing.assert_close(run["k", 0], own.repeat_interleave(2, dim=2))


def test_padded_batch_equals_single_runs(tiny):
    prompts = ["a much longer prompt than the others", "short", "mid size one"]
    batched = interp.run_heads(tiny, prompts, hooks=["pattern", "z"], return_logits=True)
    for b, p in enumerate(prompts):
        single = interp.run_heads(tiny, p, hooks=["pattern", "z"], return_logits=True)
        n = single.lengths[0]
        assert batched.lengths[b] == n
        torch.testing.assert_close(batched.logits[b, :n], single.logits[0], atol=1e-5, rtol=1e-5)
        for layer in (0, 1):
            torch.testing.assert_close(
                batched.pattern(layer)[b, :, :n, :n], single.pattern(layer)[0]
            )
            # padding rows and columns are exactly zero
            assert batched.pattern(layer)[b, :, n:, :].abs().sum() == 0
            assert batched.pattern(layer)[b, :, :, n:].abs().sum() == 0
            assert batched.get("z", layer)[b, n:].abs().sum() == 0


def test_batch_size_does_not_change_results(tiny):
    prompts = ["one", "two words", "three words here", "and a fourth"]
    a = interp.run_heads(tiny, prompts, hooks=["pattern"], batch_size=1)
    b = interp.run_heads(tiny, prompts, hooks=["pattern"], batch_size=3)
    torch.testing.assert_close(a.pattern(1), b.pattern(1), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "prompts, hooks, layers, match",
    [
        ([], ["pattern"], None, "no prompts"),
        (["ok", "   "], ["pattern"], None, "prompt 1 is empty"),
        ([3], ["pattern"], None, "not a string"),
        (["ok"], ["nope"], None, "unknown hook"),
        (["ok"], ["pattern"], [2], "out of range"),
        (["x" * 1100], ["pattern"], None, "more than the limit"),  # tiny: 1024 ctx
    ],
)
def test_bad_input_gives_clear_errors(tiny, prompts, hooks, layers, match):
    with pytest.raises(InputError, match=match):
        interp.run_heads(tiny, prompts, hooks=hooks, layers=layers)


def test_tokenize_has_no_bos_and_pads_right(tiny):
    batch = interp.tokenize(tiny, ["ab", "abcd"])
    assert batch.tokens[0].tolist()[:2] == tiny.tokenizer("ab").input_ids
    assert batch.attention_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch.lengths == [2, 4]


def test_tokens_of_multibyte_characters_show_the_characters(tiny):
    """Byte-level pieces of one character decode to U+FFFD alone; the batch shows the
    character once, on its first piece, and marks the other pieces as its continuation
    (German and Japanese text in the dashboard's ticks: "ü", "↪", not "ü", "ü")."""
    from interp.tokens import CONTINUATION, tokenize

    text = "Grüße 日本!"
    batch = tokenize(tiny, [text])
    shown = batch.str_tokens[0]
    assert not any("\ufffd" in t for t in shown)
    assert shown.count("日") == 1 and shown.count("ü") == 1  # each character shown once
    i, j = shown.index("ü"), shown.index("日")
    assert shown[i + 1] == CONTINUATION  # 2 UTF-8 bytes
    assert shown[j + 1 : j + 3] == [CONTINUATION] * 2  # 3 UTF-8 bytes
    assert "".join(t for t in shown if t != CONTINUATION) == text
    assert tiny.tokenizer.decode(batch.tokens[0].tolist()) == text  # ids unchanged


def test_print_of_a_run_is_short(tiny):
    """``print(run)`` names hooks, layers, shapes and lengths; it never dumps tensors."""
    run = interp.run_heads(tiny, ["hello world " * 20, "a b"], hooks=["pattern", "z"])
    text = repr(run)
    assert len(text) < 300 and "tensor" not in text
    n = run.lengths[0]
    assert f"pattern layers 0-1 [2, 4, {n}, {n}]" in text and f"lengths [{n}, 3]" in text
    assert "logits none" in text
    one = interp.run_heads(tiny, "hi there", hooks=["pattern"], layers=[1])
    assert "pattern layer 1 " in repr(one)
    assert len(repr(run.batch)) < 300 and "2 prompt(s)" in repr(run.batch)
