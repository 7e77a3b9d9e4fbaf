"""The parity matrix: every architecture family of interp.models.zoo, built as a small random
local folder, loaded through interp.load_model and compared with its own Hugging Face model in
eager attention (logits, every pattern, hook_z, GQA keys, streaming statistics, KV-cached
greedy decoding). A family is exact within TOLERANCE, or the step it cannot do is refused with
a message that says so; never silently wrong."""

from __future__ import annotations

import pytest

from interp.models.zoo import FAMILIES, TOLERANCE, parity

#: the steps each family refuses, and what the message says
REFUSED = {
    "gemma2": {"streaming statistics": "soft-caps its attention scores"},
    "bert": {"generation": "not a causal language model"},
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_matches_its_own_eager_attention(name):
    row = parity(name)
    assert row.logits <= TOLERANCE and row.pattern <= TOLERANCE and row.z <= TOLERANCE, row
    if FAMILIES[name].k_proj is not None:
        assert row.gqa_k <= TOLERANCE, row
    want = REFUSED.get(name, {})
    assert set(row.refused) == set(want), row.refused
    for step, words in want.items():
        assert words in row.refused[step]
    if "streaming statistics" not in want:
        assert row.stats <= TOLERANCE, row
    assert row.decode_equal is (None if name == "bert" else True)
    assert row.exact()


def test_the_matrix_covers_the_families_researchers_bring():
    wanted = {"gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "gemma2", "phi", "olmo",
              "bert"}  # fmt: skip
    assert wanted <= set(FAMILIES)
