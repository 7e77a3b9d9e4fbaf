"""The hooked real models against Hugging Face eager attention on the same weights.

Tolerance: both sides run the same fp32 weights through the same eager attention math, so the
only differences are summation order from batching/padding (~1e-6 relative). We allow 1e-4 on
logits (values ~10-30) and 1e-5 on attention probabilities, and print the measured max diffs.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers.models.llama.modeling_llama import repeat_kv

import interp
from tests.conftest import PROMPTS

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smol_run(smol):
    return interp.run_heads(
        smol, PROMPTS, hooks=["pattern", "rot_q", "rot_k", "v", "z"], return_logits=True
    )


@pytest.fixture(scope="module")
def hf_outputs(smol_hf_reference):
    model, tok = smol_hf_reference
    outs = []
    with torch.no_grad():
        for p in PROMPTS:  # one prompt at a time: no padding on the reference side
            ids = torch.tensor([tok(p).input_ids])
            outs.append(model(ids, output_attentions=True))
    return outs


def test_logits_equal_hugging_face_unpadded(smol, smol_hf_reference, hf_outputs):
    """One prompt, no padding: the bridge runs HF's own modules, so the match is ~exact."""
    tokens = interp.tokenize(smol, PROMPTS[0]).tokens
    with torch.no_grad():
        logits = smol(tokens)
    diff = (logits[0] - hf_outputs[0].logits[0]).abs().max().item()
    print(f"unpadded: max |logits - HF eager logits| = {diff:.2e}")
    assert diff < 1e-5


def test_logits_equal_hugging_face_padded_batch(smol_run, hf_outputs):
    """Batched and right-padded: matmul shapes differ, so fp32 summation order differs over
    30 layers. Measured ~1.4e-4 on logits of magnitude ~30 (5e-6 relative); we allow 1e-3."""
    worst, scale = 0.0, 0.0
    for b, ref in enumerate(hf_outputs):
        n = smol_run.lengths[b]
        worst = max(worst, (smol_run.logits[b, :n] - ref.logits[0]).abs().max().item())
        scale = max(scale, ref.logits.abs().max().item())
        assert torch.equal(smol_run.logits[b, :n].argmax(-1), ref.logits[0].argmax(-1))
    print(f"padded batch: max |logits - HF| = {worst:.2e} (max |logit| {scale:.1f})")
    assert worst < 1e-3


def test_patterns_equal_hf_eager_attentions(smol_run, hf_outputs):
    worst = 0.0
    for layer in range(30):
        pat = smol_run.pattern(layer)
        for b, ref in enumerate(hf_outputs):
            n = smol_run.lengths[b]
            worst = max(worst, (pat[b, :, :n, :n] - ref.attentions[layer][0]).abs().max().item())
    print(f"max |pattern - HF output_attentions| = {worst:.2e}")
    assert worst < 1e-5


def test_rows_sum_to_one_and_are_causal(smol_run):
    for layer in (0, 14, 29):
        pat = smol_run.pattern(layer)
        for b, n in enumerate(smol_run.lengths):
            p = pat[b, :, :n, :n]
            torch.testing.assert_close(p.sum(-1), torch.ones(9, n), atol=1e-5, rtol=0)
            assert torch.triu(p, diagonal=1).abs().max() == 0


def test_gqa_expansion_reproduces_the_pattern(smol_run):
    """softmax(rot_q . rot_k_expanded / sqrt(d)) must equal the model's own pattern per head."""
    for layer in (0, 17):
        q = smol_run.get("rot_q", layer)  # [b, pos, 9, 64]
        k = smol_run.get("rot_k", layer)  # expanded to 9 heads
        assert k.shape[2] == 9
        for b, n in enumerate(smol_run.lengths):
            scores = torch.einsum("qhd,khd->hqk", q[b, :n], k[b, :n]) / math.sqrt(64)
            scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -1e30)
            torch.testing.assert_close(
                scores.softmax(-1), smol_run.pattern(layer)[b, :, :n, :n], atol=1e-5, rtol=1e-4
            )


def test_gqa_order_matches_hf_repeat_kv(smol_run):
    """Head h of the expanded keys is HF's repeat_kv head h (kv head h // 3)."""
    k = smol_run.get("rot_k", 3)[0]  # [pos, 9, d]
    kv = k[:, ::3]  # the 3 distinct kv heads
    ref = repeat_kv(kv.permute(1, 0, 2)[None], 3)[0].permute(1, 0, 2)
    assert torch.equal(k, ref)
    assert not torch.equal(k[:, 0], k[:, 3])  # distinct kv heads really differ


def test_z_is_pattern_times_expanded_v(smol_run):
    for layer in (2, 25):
        z, v, pat = smol_run.get("z", layer), smol_run.get("v", layer), smol_run.pattern(layer)
        ref = torch.einsum("bhqk,bkhd->bqhd", pat, v)
        torch.testing.assert_close(z, ref, atol=1e-5, rtol=1e-4)


def test_minilm_bidirectional_patterns_equal_hf(minilm):
    from transformers import AutoModel

    from interp.models.loader import _minilm_folder

    texts = ["a short one", "a somewhat longer sentence about attention heads"]
    run = interp.run_heads(minilm, texts, hooks=["pattern"])
    hf = AutoModel.from_pretrained(_minilm_folder(), attn_implementation="eager").eval()
    tok = minilm.tokenizer
    worst = 0.0
    for b, t in enumerate(texts):
        with torch.no_grad():
            ref = hf(**tok(t, return_tensors="pt"), output_attentions=True).attentions
        n = run.lengths[b]
        for layer in range(6):
            p = run.pattern(layer)[b]
            worst = max(worst, (p[:, :n, :n] - ref[layer][0]).abs().max().item())
            assert p[:, :n, n:].abs().sum() == 0  # no attention to padding
    print(f"minilm: max |pattern - HF| = {worst:.2e}")
    assert worst < 1e-5
    assert run.pattern(0)[0, :, 0, 1:].sum() > 0  # bidirectional: token 0 sees later tokens
