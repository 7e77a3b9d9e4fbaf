"""The claims rule and the baselines, on hand-built cases and against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.attention import run_heads
from interp.evidence.baselines import first_token_mass, layer_index, write_change, write_norm
from interp.evidence.claims import evidence_row, score_evidence, verdict
from interp.hook_names import act_name
from interp.tokens import tokenize

N_LAYERS, N_HEADS = 4, 8


def _truth(heads):
    t = np.zeros(N_LAYERS * N_HEADS, dtype=bool)
    for la, h in heads:
        t[la * N_HEADS + h] = True
    return t


def test_a_method_that_is_the_layer_index_does_not_identify():
    truth = _truth([(3, h) for h in range(8)])  # a role planted in the last layer
    layers = layer_index(N_LAYERS, N_HEADS)
    row = evidence_row(layers + 0.01 * np.arange(32), truth, {"layer index": layers})
    assert row["auc"] == 1.0
    assert row["verdict"].startswith("does not beat layer index")


def test_a_method_that_finds_a_role_spread_over_layers_identifies():
    truth = _truth([(0, 1), (1, 2), (2, 3), (3, 4), (1, 7), (2, 0)])
    rng = np.random.default_rng(0)
    method = rng.normal(size=32) + 4 * truth  # separates the role
    base = {"layer index": layer_index(N_LAYERS, N_HEADS),
            "noise": rng.normal(size=32)}  # fmt: skip
    row = evidence_row(method, truth, base)
    assert row["interval"][0] > max(b["auc"] for b in row["baselines"].values())
    assert row["p_null"] < 0.001
    assert row["verdict"] == "identifies"


def test_chance_level_on_few_negatives_is_not_a_finding():
    truth = np.array([True] * 6 + [False] * 2)  # the old 2 x 4 circuit models
    method = np.array([8, 7, 6, 5, 4, 2, 3, 1], dtype=float)  # AUC 11/12
    ev = score_evidence(method, truth)
    assert ev["auc"] == pytest.approx(11 / 12)
    assert ev["p_null"] == pytest.approx(2 / 28)
    assert verdict(ev, {}).startswith("not better than a random ranking")


def test_seeds_are_kept_and_summarised():
    truth = _truth([(0, 0), (1, 1), (2, 2), (3, 3)])
    rng = np.random.default_rng(1)
    runs = np.stack([rng.normal(size=32) + 3 * truth for _ in range(10)])
    ev = score_evidence(runs, truth)
    assert len(ev["seeds"]) == 10
    assert ev["auc"] == pytest.approx(np.mean(ev["seeds"]))
    assert ev["auc_min"] <= ev["auc"] <= ev["auc_max"]
    assert ev["auc_std"] == pytest.approx(np.std(ev["seeds"], ddof=1))


def test_layer_index_orders_heads_layer_by_layer():
    assert layer_index(2, 3).tolist() == [0, 0, 0, 1, 1, 1]
    assert layer_index(2, 3, reversed=True).tolist() == [1, 1, 1, 0, 0, 0]


def test_write_norm_is_what_zeroing_the_head_removes_from_the_attention_output(tiny):
    """Reference: the change of ``hook_attn_out`` when one head's z is zeroed (bias cancels)."""
    batch = tokenize(tiny, ["The cat sat on the mat.", "A dog ran far away"])
    got = write_norm(tiny, batch)
    real = batch.attention_mask.bool()
    for la in range(int(tiny.cfg.n_layers)):
        out_name = f"blocks.{la}.hook_attn_out"
        _, clean = tiny.run_with_cache(batch.tokens, attention_mask=batch.attention_mask,
                                       names_filter=[out_name])  # fmt: skip
        for h in range(int(tiny.cfg.n_heads)):

            def zero(z, hook, h=h):
                z[:, :, h] = 0
                return z

            with tiny.hooks(fwd_hooks=[(act_name("z", la), zero)]):
                _, ablated = tiny.run_with_cache(
                    batch.tokens, attention_mask=batch.attention_mask,
                    names_filter=[out_name],
                )  # fmt: skip
            diff = (clean[out_name] - ablated[out_name]).norm(dim=-1)[real].mean()
            assert got[la * int(tiny.cfg.n_heads) + h] == pytest.approx(float(diff), rel=1e-4)


def test_write_change_on_a_hand_built_case():
    x = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]], [[3.0, 4.0]], [[-1.0, 0.0]]])
    got = write_change(x, np.array([True, True, False, False]))
    assert got == pytest.approx([(0 / 10 + 2 / 2) / 2])


def test_first_token_mass_is_s0_of_the_patterns(tiny):
    prompts = ["The cat sat on the mat.", "A dog ran far away"]
    got = first_token_mass(tiny, prompts)
    batch = tokenize(tiny, prompts)
    run = run_heads(tiny, batch, hooks=["pattern"])
    want = []
    for la in range(int(tiny.cfg.n_layers)):
        p = run.pattern(la)  # [b, head, q, k]
        s0 = torch.stack([p[b, :, :n, 0].sum(-1) / n for b, n in enumerate(batch.lengths)])
        want.append(s0.mean(0))
    np.testing.assert_allclose(got, torch.cat(want).numpy(), rtol=1e-5)
