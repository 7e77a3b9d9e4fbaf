"""Ablations change exactly the targeted heads; patching a run with itself is a no-op; path
patching and metrics on hand-checkable cases."""

from __future__ import annotations

import pytest
import torch

from interp.ablation import ablate, head_means
from interp.ablation.heads import cache_z
from interp.ablation.metrics import accuracy, faithfulness, kl_to_clean, logit_diff
from interp.ablation.patching import activation_patching, path_patching
from interp.errors import InputError
from interp.tokens import tokenize

PROMPTS = ["the cat sat on the mat", "a dog ran far away"]


def _z(model, batch, hooks=()):
    with model.hooks(fwd_hooks=list(hooks)):
        return cache_z(model, batch, [0, 1])


@pytest.mark.parametrize("kind", ["zero", "mean", "resample", "uniform"])
def test_ablation_changes_only_targeted_heads(tiny, kind):
    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["x y z w v u t s r q p", "hello there my old dear friend"])
    clean = cache_z(tiny, batch, [0, 1])
    kw = {"reference": other} if kind == "mean" else {}
    if kind == "resample":
        kw = {"corrupted": tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])}
        assert kw["corrupted"].lengths == batch.lengths
    with ablate(tiny, [(0, 1)], kind, **kw):
        got = cache_z(tiny, batch, [0, 1])
    assert torch.equal(got[0][:, :, [0, 2, 3]], clean[0][:, :, [0, 2, 3]])  # bit-identical
    assert not torch.equal(got[0][:, :, 1], clean[0][:, :, 1])
    real = batch.attention_mask.bool()
    if kind == "zero":
        assert (got[0][:, :, 1] == 0).all()
    if kind == "mean":
        mean = head_means(tiny, other, [(0, 1)])[(0, 1)]
        torch.testing.assert_close(got[0][real][:, 1], mean.expand(int(real.sum()), -1))
    # outside the context manager nothing is ablated
    assert torch.equal(cache_z(tiny, batch, [0, 1])[1], clean[1])


def test_ablation_errors(tiny):
    with pytest.raises(InputError, match="reference"):
        with ablate(tiny, [(0, 0)], "mean"):
            pass
    with pytest.raises(InputError, match="unknown ablation"):
        with ablate(tiny, [(0, 0)], "melt"):
            pass


def _metric(batch):
    answer = batch.tokens[:, 1]
    wrong = batch.tokens[:, 2]
    return lambda logits: logit_diff(logits, batch.lengths, answer, wrong)


@pytest.mark.parametrize("hook", ["z", "q", "k", "v", "pattern"])
def test_patching_a_run_with_itself_is_a_no_op(tiny, hook):
    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])
    metric = _metric(batch)
    with torch.no_grad():
        base = metric(tiny(batch.tokens, attention_mask=batch.attention_mask))
        corrupt = metric(tiny(other.tokens, attention_mask=other.attention_mask))
    # patch from a different run, but compare the raw metric of a self-patch
    eff = activation_patching(tiny, batch, other, metric, hook=hook, progress=False)
    assert eff.shape == (2, 2 if hook in ("k", "v") else 4) and torch.isfinite(eff).all()
    assert base != corrupt
    self_eff = activation_patching(
        tiny, batch, batch, lambda lg: metric(lg) - base + 1.0, hook=hook, progress=False
    )
    assert torch.isnan(self_eff).all()  # clean == corrupt metric: normalisation undefined
    # the raw metric after self-patching equals the clean metric exactly
    from interp.ablation.patching import _run, _set

    name = f"blocks.1.attn.hook_{hook}"
    with torch.no_grad():
        _, cache = tiny.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
    src = cache[name]
    logits = _run(tiny, batch, [(name, lambda x, hook, kind=hook: _set(x, src, kind, 0, None))])
    assert metric(logits) == base


def test_denoising_writes_clean_heads_into_the_corrupted_run(tiny):
    """direction="denoising" (transformer-lens' convention) equals a hand-written patch of one
    head's clean z into the corrupted run, normalised so that 1 = clean metric restored."""
    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])
    metric = _metric(batch)
    eff = activation_patching(
        tiny, batch, other, metric, hook="z", direction="denoising", progress=False
    )
    with torch.no_grad():
        m_clean = metric(tiny(batch.tokens, attention_mask=batch.attention_mask))
        m_corrupt = metric(tiny(other.tokens, attention_mask=other.attention_mask))
        clean_z = cache_z(tiny, batch, [1])[1]

        def put(z, hook):
            z = z.clone()
            z[:, :, 2] = clean_z[:, :, 2]
            return z

        with tiny.hooks(fwd_hooks=[("blocks.1.attn.hook_z", put)]):
            m = metric(tiny(other.tokens, attention_mask=other.attention_mask))
    torch.testing.assert_close(eff[1, 2], torch.tensor((m - m_corrupt) / (m_clean - m_corrupt)))
    with pytest.raises(InputError, match="direction"):
        activation_patching(tiny, batch, other, metric, direction="backwards", progress=False)


def test_patching_by_position_and_full_patch(tiny):
    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])
    eff = activation_patching(tiny, batch, other, _metric(batch), by="position", progress=False)
    assert eff.shape == (2, 4, batch.tokens.shape[1])


def test_path_patching_checks_and_runs(tiny):
    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])
    e = path_patching(tiny, batch, other, _metric(batch), (0, 1), [(1, 0), (1, 3)])
    assert isinstance(e, float)
    with pytest.raises(InputError, match="after the sender"):
        path_patching(tiny, batch, other, _metric(batch), (1, 1), [(1, 0)])


def test_metrics_hand_computed():
    logits = torch.zeros(2, 3, 5)
    logits[0, 2] = torch.tensor([0.0, 3.0, 1.0, 0.0, 0.0])  # prompt 0: length 3
    logits[1, 1] = torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0])  # prompt 1: length 2
    ans, wrong = torch.tensor([1, 1]), torch.tensor([2, 2])
    assert logit_diff(logits, [3, 2], ans, wrong) == pytest.approx((2.0 + -2.0) / 2)
    assert accuracy(logits, [3, 2], ans, wrong) == 0.5
    assert kl_to_clean(logits, logits, [3, 2]) == pytest.approx(0.0, abs=1e-7)
    assert faithfulness(2.0, 4.0) == 0.5


def _hf_path_reference(model, clean, corrupted, metric, sender, receiver, d_head, n_rep):
    """Path patching sender -> receiver's v in a 2-layer model, written with plain PyTorch
    hooks on the Hugging Face modules (no transformer-lens): in two layers the only heads the
    receiver's input can see are layer 0's, whose inputs are the clean tokens, so freezing the
    other heads is automatic. (a) the sender's per-head output on the corrupted run, (b) the
    receiver's kv-head v on the clean run with only the sender's output corrupted, (c) the clean
    run with only that v replaced; the metric normalised between clean (0) and corrupted (1)."""
    hf = model.original_model.model
    (s_layer, s_head), (r_layer, r_head) = sender, receiver
    s_cols = slice(s_head * d_head, (s_head + 1) * d_head)
    kv = r_head // n_rep
    v_cols = slice(kv * d_head, (kv + 1) * d_head)
    saved = {}

    def run(batch, hooks):
        handles = [m.register_forward_hook(h) if post else m.register_forward_pre_hook(h)
                   for m, h, post in hooks]  # fmt: skip
        try:
            with torch.no_grad():
                return model.original_model(
                    batch.tokens, attention_mask=batch.attention_mask
                ).logits
        finally:
            for handle in handles:
                handle.remove()

    o_proj = hf.layers[s_layer].self_attn.o_proj
    v_proj = hf.layers[r_layer].self_attn.v_proj
    run(corrupted, [(o_proj, lambda m, a: saved.__setitem__("z", a[0].clone()), False)])

    def corrupt_sender(m, args):
        x = args[0].clone()
        x[..., s_cols] = saved["z"][..., s_cols]
        return (x,)

    run(clean, [(o_proj, corrupt_sender, False),
                (v_proj, lambda m, a, out: saved.__setitem__("v", out.clone()), True)])  # fmt: skip

    def patch_v(m, args, out):
        out = out.clone()
        out[..., v_cols] = saved["v"][..., v_cols]
        return out

    m = metric(run(clean, [(v_proj, patch_v, True)]))
    m_clean, m_corrupt = metric(run(clean, [])), metric(run(corrupted, []))
    return (m - m_clean) / (m_corrupt - m_clean)


def test_path_patching_equals_a_plain_pytorch_reference_on_two_layers():
    """Path patching (sender L0.H1 -> receiver L1.H2's values) equals the same path computed
    with plain PyTorch hooks on the Hugging Face modules; and a sender or receiver whose output
    projection is zeroed carries nothing (effect exactly 0)."""
    import interp

    model = interp.load_model("tiny")  # its own copy: the weights are edited below
    clean = tokenize(model, PROMPTS[:1])
    corrupted = tokenize(model, ["the dog sat on the rug"])
    assert clean.lengths == corrupted.lengths
    metric = _metric(clean)
    from interp.models.info import n_kv_heads

    d_head, n_rep = int(model.cfg.d_head), int(model.cfg.n_heads) // n_kv_heads(model)
    got = path_patching(model, clean, corrupted, metric, (0, 1), [(1, 2)], receiver_input="v")
    want = _hf_path_reference(model, clean, corrupted, metric, (0, 1), (1, 2), d_head, n_rep)
    assert abs(got) > 1e-4  # the path carries something on this input
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    layers = model.original_model.model.layers
    with torch.no_grad():
        layers[0].self_attn.o_proj.weight[:, d_head : 2 * d_head] = 0  # L0.H1 writes nothing
    for r_input in ("q", "k", "v"):
        assert path_patching(model, clean, corrupted, metric, (0, 1), [(1, 2)],
                             receiver_input=r_input) == 0.0  # fmt: skip
    with torch.no_grad():  # L1.H0 reads from L0.H2 but writes nothing
        layers[1].self_attn.o_proj.weight[:, :d_head] = 0
    assert path_patching(model, clean, corrupted, metric, (0, 2), [(1, 0)]) == 0.0


def test_metrics_on_logits_that_require_grad_give_no_warning():
    """A user's logits often come from a forward with gradients on (attribution); the float
    metrics detach first instead of warning about converting a grad tensor."""
    import warnings

    from interp.ablation.metrics import answer_prob

    logits = torch.randn(2, 3, 5, requires_grad=True)
    lengths, answer, wrong = [3, 2], torch.tensor([1, 2]), torch.tensor([0, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = logit_diff(logits, lengths, answer, wrong)
        a = accuracy(logits, lengths, answer, wrong)
        p = answer_prob(logits, lengths, answer)
        k = kl_to_clean(logits, logits * 2, lengths)
    last = torch.stack([logits[0, 2], logits[1, 1]]).detach()
    assert d == pytest.approx(float((last[[0, 1], [1, 2]] - last[[0, 1], [0, 3]]).mean()))
    assert 0 <= a <= 1 and 0 <= p <= 1 and k >= 0


@pytest.mark.parametrize("direction", ["noising", "denoising"])
@pytest.mark.parametrize("last", [False, True])
def test_resumed_patching_equals_the_bridge_path(tiny, direction, last):
    """The fast path (resume at the patched layer, a layer's heads in one batched forward,
    optionally logits at the last token only) gives the bridge's per-head results."""
    from interp.ablation.patching import _run
    from interp.ablation.resume import resume_runner

    batch = tokenize(tiny, PROMPTS)
    other = tokenize(tiny, ["the dog sat on the rug", "a cat ran far awry"])
    metric = _metric(batch)
    runner = resume_runner(tiny, batch, _run(tiny, batch), metric)
    assert runner is not None  # the fast path is taken on this model
    runner.close()
    kw = dict(hook="z", direction=direction, progress=False)
    slow = activation_patching(tiny, batch, other, metric, fast=False, **kw)
    fast = activation_patching(tiny, batch, other, metric, metric_reads_last_token=last, **kw)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
    assert slow.abs().max() > 0.05  # some head matters: the comparison is not of zeros


@pytest.mark.parametrize(
    "family,resumes", [("gpt2", False), ("gpt_neox", True), ("gemma", True), ("qwen3", True)]
)
def test_patching_on_other_families_equals_the_bridge_path(family, resumes, tmp_path):
    """Whether a family resumes or not, the numbers are the bridge's. GPT-2 adds position
    embeddings inside the model, so a resumed run would be wrong: the self-check sees it and
    the bridge path runs (Gemma scales its embeddings in the embedding module: it resumes)."""
    import interp
    from interp.ablation.patching import _run
    from interp.ablation.resume import resume_runner
    from interp.models.zoo import build_folder

    model = interp.load_model(str(build_folder(family, tmp_path / family)))
    batch = tokenize(model, PROMPTS)
    other = tokenize(model, ["the dog sat on the rug", "a cat ran far awry"])
    metric = _metric(batch)
    runner = resume_runner(model, batch, _run(model, batch), metric)
    assert (runner is not None) == resumes
    if runner is not None:
        runner.close()
    kw = dict(hook="z", progress=False, metric_reads_last_token=True)
    torch.testing.assert_close(
        activation_patching(model, batch, other, metric, **kw),
        activation_patching(model, batch, other, metric, fast=False, **kw),
        atol=1e-4,
        rtol=1e-4,
    )


@pytest.mark.real_model
def test_resumed_patching_equals_the_bridge_path_on_smollm2(smol):
    batch = tokenize(smol, ["When Mary and John went to the store, John gave a drink to"])
    other = tokenize(smol, ["When Mary and John went to the store, Mary gave a drink to"])
    ids = smol.tokenizer([" Mary", " John"], add_special_tokens=False)["input_ids"]
    answer, wrong = torch.tensor([ids[0][0]]), torch.tensor([ids[1][0]])

    def metric(lg):
        return logit_diff(lg, batch.lengths, answer, wrong)

    kw = dict(hook="z", layers=[0, 14, 29], progress=False)
    slow = activation_patching(smol, batch, other, metric, fast=False, **kw)
    fast = activation_patching(smol, batch, other, metric, metric_reads_last_token=True, **kw)
    torch.testing.assert_close(fast, slow, atol=2e-4, rtol=1e-3, equal_nan=True)
    assert torch.nan_to_num(slow).abs().max() > 0.05
