"""Classic pattern heads: detection patterns, hand-built scores, transformer-lens parity."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import head_detector as tl

from interp.errors import InputError
from interp.heads import get_detector
from interp.heads.classic import (
    duplicate_token_pattern,
    induction_pattern,
    pattern_scores,
    previous_token_pattern,
)
from interp.inputs.text import all_patterns, repeated_random_tokens

TOKS = torch.tensor([7, 3, 9, 7, 3, 9, 5])


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (previous_token_pattern, tl.get_previous_token_head_detection_pattern),
        (duplicate_token_pattern, tl.get_duplicate_token_head_detection_pattern),
        (induction_pattern, tl.get_induction_head_detection_pattern),
    ],
)
def test_detection_patterns_equal_transformer_lens(ours, theirs):
    assert torch.equal(ours(TOKS), theirs(TOKS[None]).float())


def test_induction_pattern_by_hand():
    d = induction_pattern(TOKS)
    # t=3 (token 7, earlier at 0) -> attend s=1; t=4 (3, earlier at 1) -> s=2; t=5 -> s=3
    assert d[3].nonzero().flatten().tolist() == [1]
    assert d[4].nonzero().flatten().tolist() == [2]
    assert d[5].nonzero().flatten().tolist() == [3]
    assert d[6].sum() == 0 and d[:3].sum() == 0


def test_scores_on_a_perfect_previous_token_head():
    n = 5
    perfect = torch.zeros(n, n)
    perfect[0, 0] = 1
    perfect[torch.arange(1, n), torch.arange(n - 1)] = 1
    uniform = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    patterns = torch.stack([perfect, uniform])[None, None]  # [layer 1, batch 1, head 2, q, k]
    s = pattern_scores(patterns, TOKS[None, :n], [n], previous_token_pattern)
    # perfect: 4 of the 5 units of mass sit on the previous token; uniform: sum_{t>=1} 1/(t+1) / 5
    expected_uniform = sum(1 / (t + 1) for t in range(1, n)) / n
    torch.testing.assert_close(s[0], torch.tensor([4 / 5, expected_uniform]))


def test_scores_match_transformer_lens_similarity_on_random_patterns():
    torch.manual_seed(0)
    n = 9
    a = torch.rand(3, n, n).tril()
    a = a / a.sum(-1, keepdim=True)
    for fn in (previous_token_pattern, duplicate_token_pattern, induction_pattern):
        ours = pattern_scores(a[None, None], TOKS.repeat(2)[None, :n], [n], fn)[0]
        for h in range(3):
            ref = tl.compute_head_attention_similarity_score(
                a[h],
                fn(TOKS.repeat(2)[:n]),
                exclude_bos=False,
                exclude_current_token=False,
                error_measure="mul",
            )
            assert abs(ours[h].item() - ref) < 1e-6


def test_padding_is_ignored(tiny):
    batch = repeated_random_tokens(tiny, n_seqs=2, half_len=5)
    pats = all_patterns(tiny, batch)
    full = pattern_scores(pats, batch.tokens, batch.lengths, induction_pattern)
    padded = torch.nn.functional.pad(pats, (0, 3, 0, 3))
    toks = torch.nn.functional.pad(batch.tokens, (0, 3))
    torch.testing.assert_close(pattern_scores(padded, toks, batch.lengths, induction_pattern), full)


PARITY_TEXTS = {
    "tiny": "the cat sat. the cat sat. the dog ran; the dog ran",
    "smol": "Alice met Bob at the market. Alice met Bob at the market again, and Bob waved.",
}


@pytest.mark.parametrize("name", ["tiny", pytest.param("smol", marks=pytest.mark.real_model)])
def test_detect_head_parity(name, request):
    """Our scores equal transformer-lens' detect_head on the same model and text (detect_head
    tokenizes with the bridge and runs its own forward pass); SmolLM2 adds GQA and 30 layers."""
    from interp.tokens import tokenize

    model, text = request.getfixturevalue(name), PARITY_TEXTS[name]
    batch = tokenize(model, text)
    pats = all_patterns(model, batch)
    for fn, detector in (
        (induction_pattern, "induction_head"),
        (duplicate_token_pattern, "duplicate_token_head"),
        (previous_token_pattern, "previous_token_head"),
    ):
        ours = pattern_scores(pats, batch.tokens, batch.lengths, fn)
        ref = tl.detect_head(model, text, detector)
        torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-4)


def test_unknown_detector():
    with pytest.raises(InputError, match="available"):
        get_detector("telepathy")


def test_repeated_random_tokens_repeat_and_avoid_specials(tiny):
    b = repeated_random_tokens(tiny, n_seqs=3, half_len=10, seed=1)
    assert b.tokens.shape == (3, 20)
    assert torch.equal(b.tokens[:, :10], b.tokens[:, 10:])
    assert not set(b.tokens.flatten().tolist()) & set(tiny.tokenizer.all_special_ids)


@pytest.mark.real_model
def test_smollm2_classic_heads_table(smol):
    res = get_detector("induction").run(smol)
    assert len(res.table) == 270 and res.table.score.between(0, 1).all()
    prev = get_detector("previous_token").run(smol)
    assert prev.table.score.max() > 0.5  # SmolLM2 has clear previous-token heads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_detection_pairs_equal_the_dense_patterns(seed):
    """The sweep's O(pairs) enumerators give exactly the nonzero entries of the n x n patterns."""
    from interp.heads.classic import (
        duplicate_token_pairs,
        duplicate_token_pattern,
        induction_pairs,
        induction_pattern,
        previous_token_pairs,
        previous_token_pattern,
    )

    tokens = torch.randint(0, 7, (60,), generator=torch.Generator().manual_seed(seed))
    for pairs_fn, dense_fn in (
        (previous_token_pairs, previous_token_pattern),
        (duplicate_token_pairs, duplicate_token_pattern),
        (induction_pairs, induction_pattern),
    ):
        t, s = pairs_fn(tokens)
        got = sorted(zip(t.tolist(), s.tolist(), strict=True))
        want = sorted(map(tuple, torch.nonzero(dense_fn(tokens)).tolist()))
        assert got == want, pairs_fn.__name__
    assert duplicate_token_pairs(torch.arange(10))[0].numel() == 0  # no repeats, no pairs
