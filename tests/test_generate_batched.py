"""Batched greedy decoding with shared-prefix prefills (interp.generate_batched) against the
one-prompt-at-a-time decoder: identical tokens, identical retrieval scores, and exactly one
prefill per distinct prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import InputError
from interp.generate import greedy_decode, newline_or_eos
from interp.generate_batched import (
    batched_decode_supported,
    batched_greedy_decode,
    common_prefix,
)
from interp.heads.retrieval import make_tests, run_test, run_tests
from interp.hook_names import act_name


def _distinct_prefix_tokens(prompts: list[list[int]]) -> int:
    """Nodes of the prompts' prefix trie: the tokens one prefill per distinct prefix runs."""
    return len({tuple(p[: i + 1]) for p in prompts for i in range(len(p))})


def test_common_prefix_hand_cases():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([5], [6]) == 0


def test_needle_grid_batched_equals_one_at_a_time(tiny):
    tests = make_tests(tiny, lengths=[200, 260], depths=[0.0, 50.0, 100.0], needles=(0, 1))
    one = [run_test(tiny, t) for t in tests]
    seen = []
    batched = run_tests(tiny, tests, on_done=lambda i, o: seen.append(i))
    assert sorted(seen) == list(range(len(tests)))
    for a, b in zip(one, batched, strict=True):
        assert a.response == b.response and a.n_generated == b.n_generated
        np.testing.assert_array_equal(a.scores, b.scores)


def test_each_distinct_prefix_is_prefilled_once(tiny):
    tests = make_tests(tiny, lengths=[200, 260], depths=[0.0, 50.0, 100.0], needles=(0, 1))
    prompts = [t.ids for t in tests]
    _, counts = batched_greedy_decode(tiny, prompts, max_new_tokens=3, token_budget=600)
    assert counts["prompt_tokens"] == sum(len(p) - 1 for p in prompts)
    assert counts["tokens_prefilled"] == _distinct_prefix_tokens([p[:-1] for p in prompts])
    assert counts["tokens_prefilled"] < 0.8 * counts["prompt_tokens"]
    assert counts["batches"] > 1  # the token budget split the grid


def test_prompts_that_are_prefixes_of_others_and_duplicates(tiny):
    """Sorted order puts a prompt right before the prompts it is a prefix of; a duplicate
    shares everything. Each still decodes as it would alone."""
    base = make_tests(tiny, lengths=[250], depths=[50.0], needles=(0,))[0].ids
    prompts = [base, base[:-7], base, base[:40], [base[0], base[1]]]
    stop = newline_or_eos(tiny)
    got, _ = batched_greedy_decode(tiny, prompts, max_new_tokens=8, stop=stop)
    n_layers = int(tiny.cfg.n_layers)
    for p, d in zip(prompts, got, strict=True):
        steps: list[dict[int, torch.Tensor]] = []

        def top(pattern, hook, steps=steps):  # the bridge's pattern row, as run_test reads it
            if hook.layer() == 0:
                steps.append({})
            steps[-1][hook.layer()] = pattern[0, :, -1].argmax(-1)

        hooks = [(act_name("pattern", la), top) for la in range(n_layers)]
        assert d.tokens == greedy_decode(tiny, p, max_new_tokens=8, stop=stop, step_hooks=hooks)
        want = torch.stack([torch.stack([s[la] for la in range(n_layers)]) for s in steps])
        assert torch.equal(torch.stack(d.top_keys), want)
        assert want.max() >= len(p) - 1  # some heads look at the generated tokens too


def test_hooks_on_the_bridge_fall_back_to_one_at_a_time(tiny):
    point = tiny.hook_dict["blocks.0.attn.hook_pattern"]
    handle = point.add_hook(lambda x, hook: x, is_permanent=True)
    try:
        assert not batched_decode_supported(tiny)
        with pytest.raises(InputError, match="greedy_decode"):
            batched_greedy_decode(tiny, [[1, 2, 3]])
    finally:
        handle.hook.remove()
        point.fwd_hooks.remove(handle)
    assert batched_decode_supported(tiny)


def test_prompt_too_long_for_the_context_is_refused(tiny):
    with pytest.raises(InputError, match="every prompt needs"):
        batched_greedy_decode(tiny, [[1] * int(tiny.cfg.n_ctx)], max_new_tokens=5)


@pytest.mark.real_model
def test_smollm2_needles_batched_equal_one_at_a_time(smol):
    """The real model answers (recall > 0.5) and copies: tokens and scores are identical."""
    tests = make_tests(smol, lengths=[256], depths=[0.0, 50.0, 100.0], needles=(0, 1))
    one = [run_test(smol, t) for t in tests]
    batched = run_tests(smol, tests)
    for a, b in zip(one, batched, strict=True):
        assert a.response == b.response
        np.testing.assert_array_equal(a.scores, b.scores)
    assert sum(o.passed for o in batched) >= 3 and max(o.scores.max() for o in batched) > 0.3
