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
