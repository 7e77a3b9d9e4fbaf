"""Retrieval heads: the copy-paste rule on hand-built cases, needle prompts, and the streaming
(KV-cache) score against a dense recomputation with Hugging Face eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import InputError
from interp.heads import get_detector
from interp.heads.retrieval import copy_paste_hits, run_test
from interp.inputs.needles import build_test, grid, load_needles, rouge1_recall


def test_copy_paste_rule_hand_built():
    prompt = torch.tensor([5, 6, 7, 8, 9, 7])
    # needle span [2, 5) holds tokens 7, 8, 9; generated token 7
    keys = torch.tensor([2, 5, 3, 1, 6])  # in span+match, outside span, wrong token, out, generated
    assert copy_paste_hits(keys, prompt, 2, 5, 7).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_rouge_recall_matches_definition():
    ref = "The cat sat on the mat."
    assert rouge1_recall(ref, "the cat sat on the mat") == 1.0
    # 3 of the 6 reference unigrams (the x2, cat, sat, on, mat -> 'the' counted twice)
    assert rouge1_recall(ref, "the cat") == pytest.approx(2 / 6)


@pytest.mark.real_model
def test_needle_prompt_layout(smol):
    needle = load_needles()[1]
    for depth in (0.0, 50.0, 100.0):
        t = build_test(smol, needle, 512, depth, 1)
        assert len(t.ids) == 512
        assert smol.tokenizer.decode(t.ids[t.needle_start : t.needle_end]) == needle.needle
        # the copy span is the short answer (official real_needle), exactly its tokens
        assert smol.tokenizer.decode(t.ids[t.start : t.end]).strip() == needle.answer
        assert t.needle_start < t.start < t.end <= t.needle_end
        text = smol.tokenizer.decode(t.ids)
        assert text.startswith("<|im_start|>system")
        assert text.endswith("Answer:<|im_end|>\n<|im_start|>assistant\n")
        assert needle.question in text
    first = build_test(smol, needle, 512, 0.0)
    last = build_test(smol, needle, 512, 100.0)
    assert first.start < 60 < 450 < last.start  # depth moves the needle through the context
    with pytest.raises(InputError, match="no room"):
        build_test(smol, needle, 40, 50.0)
    with pytest.raises(InputError, match="percentage"):
        build_test(smol, needle, 512, 150.0)


@pytest.mark.real_model
def test_answer_spans_of_every_bundled_needle(smol):
    """Each needle's answer occurs in its sentence and its token span decodes to the answer
    (up to a leading space): the copy span and ROUGE reference of the official code."""
    for i, needle in enumerate(load_needles()):
        t = build_test(smol, needle, 256, 50.0, i)
        got = smol.tokenizer.decode(t.ids[t.start : t.end])
        assert got.strip() == needle.answer, (got, needle.answer)


def test_needle_answer_must_be_inside_the_sentence():
    from interp.inputs.needles import Needle

    with pytest.raises(InputError, match="answer"):
        Needle("The cat is named Tom.", "What is the cat's name?", "Jerry")


def test_correct_concise_answer_counts_with_the_answer_span():
    """Official rule: ROUGE-1 recall against the short answer. 'Captain Whiskers.' recalls all
    of the answer; against the whole needle sentence it would recall 2 of 13 words and fail."""
    needle = load_needles()[2]
    assert rouge1_recall(needle.answer, "Captain Whiskers.") == 1.0
    assert rouge1_recall(needle.needle, "Captain Whiskers.") < 0.5


def test_decode_hooks_mask_only_the_decoding_steps(tiny):
    """Official masking: the prompt is prefilled unmasked, the heads are masked while decoding
    (every masked scores tensor the hook sees has a single query row)."""
    from interp.ablation.uniform import uniform_attention_hooks

    test = build_test(tiny, load_needles()[0], 200, 50.0, 0)
    seen = []
    ((name, mask),) = uniform_attention_hooks(tiny, [(1, 0)])

    def hook(scores, hook):
        seen.append(scores.shape[-2])
        return mask(scores, hook)

    out = run_test(tiny, test, decode_hooks=[(name, hook)], score_heads=False)
    assert seen and set(seen) == {1} and len(seen) == out.n_generated
    run_test(tiny, test)  # scoring hooks too
    assert not [n for n, p in tiny.hook_dict.items() if p.fwd_hooks]  # nothing left behind


def test_grids_scale_to_context():
    assert grid("small", 8192) == ([256, 512, 1024], [0.0, 25.0, 50.0, 75.0, 100.0])
    lengths, depths = grid("large", 8192)
    assert lengths[0] == 1024 and lengths[-1] == 8192 - 64 and len(lengths) == 8
    assert len(depths) == 10 and depths[0] == 0 and depths[-1] == 100
    assert grid("large", 2048)[0][-1] == 2048 - 64
    with pytest.raises(InputError):
        grid("huge", 8192)


@pytest.mark.real_model
def test_streaming_score_equals_dense_reference(smol, smol_hf_reference):
    """Our score uses the bridge with a KV cache and per-step hooks; the reference reruns the
    whole answer with HF eager attention and applies the copy-paste rule to every query row."""
    hf, _ = smol_hf_reference
    test = build_test(smol, load_needles()[0], 256, 50.0, 0)
    out = run_test(smol, test)
    assert out.recall > 0.5, out.response  # SmolLM2 answers this one
    gen = smol.tokenizer(out.response, add_special_tokens=False)["input_ids"]
    # re-derive generated ids from the model itself (response is decoded text)
    ids = torch.tensor([test.ids])
    with torch.no_grad():
        full = hf.generate(ids, max_new_tokens=out.n_generated, do_sample=False)
    generated = full[0, len(test.ids) :].tolist()
    assert smol.tokenizer.decode(generated, skip_special_tokens=True).strip() == out.response
    assert gen  # non-empty answer
    with torch.no_grad():
        attn = hf(full[:, :-1], output_attentions=True).attentions
    prompt = torch.tensor(test.ids)
    ref = torch.zeros(len(attn), attn[0].shape[1], dtype=torch.float64)
    for i, token in enumerate(generated):
        q = len(test.ids) - 1 + i
        for layer, a in enumerate(attn):
            keys = a[0, :, q].argmax(-1)
            ref[layer] += copy_paste_hits(keys, prompt, test.start, test.end, token).double()
    ref /= test.end - test.start
    torch.testing.assert_close(torch.tensor(out.scores, dtype=torch.float64), ref)
    assert ref.max() > 0.3  # some head copies most of the needle


def test_retrieval_detector_runs_on_tiny_and_resumes(tiny, tmp_path):
    det = get_detector("retrieval")
    r1 = det.run(tiny, lengths=[200], depths=[50.0], needles=[0], workdir=tmp_path, progress=False)
    assert len(r1.table) == 8 and (r1.table.threshold == 0.1).all()
    assert r1.inputs["n_tests"] == 1 and r1.inputs["n_tests_reused"] == 0
    r2 = det.run(tiny, lengths=[200], depths=[50.0], needles=[0], workdir=tmp_path, progress=False)
    assert r2.inputs["n_tests_reused"] == 1
    assert r2.extra["tests"].response.tolist() == r1.extra["tests"].response.tolist()


def test_retrieval_rejects_encoder(minilm):
    with pytest.raises(InputError, match="causal"):
        get_detector("retrieval").run(minilm, progress=False)


def test_prefill_builds_no_pattern_and_scores_like_the_bridge_prefill(tiny):
    """Without ablation hooks the prompt is prefilled by the plain model (SDPA): the bridge's
    hook_pattern only ever sees one query row, and the scores and answer equal those of a
    bridge prefill (forced here by a no-op forward hook)."""
    test = build_test(tiny, load_needles()[0], 200, 50.0, 0)
    rows = []
    handles = [
        tiny.blocks[la].attn.hook_pattern.register_forward_hook(
            lambda mod, inp, out: rows.append(out.shape[-2])
        )
        for la in range(tiny.cfg.n_layers)
    ]
    try:
        plain = run_test(tiny, test)
    finally:
        for h in handles:
            h.remove()
    assert rows and max(rows) == 1  # decode steps only: no [n, n] pattern
    noop = [("blocks.0.attn.hook_pattern", lambda x, hook: x)]
    bridged = run_test(tiny, test, fwd_hooks=noop)
    assert plain.response == bridged.response
    np.testing.assert_array_equal(plain.scores, bridged.scores)


def test_hooks_already_on_the_bridge_force_the_bridge_prefill(tiny):
    """A permanent hook added to the bridge (as apply_calibration does) must act on the prompt
    pass: the plain-model prefill would bypass it."""
    test = build_test(tiny, load_needles()[0], 200, 50.0, 0)
    rows = []
    point = tiny.hook_dict["blocks.0.attn.hook_pattern"]
    handle = point.add_hook(lambda x, hook: rows.append(x.shape[-2]), is_permanent=True)
    try:
        run_test(tiny, test, score_heads=False)
    finally:
        handle.hook.remove()
        point.fwd_hooks.remove(handle)
    assert max(rows) == len(test.ids) - 1  # the prompt pass went through the bridge
