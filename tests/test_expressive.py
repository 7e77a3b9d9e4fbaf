"""Expressive attention (docs/methods.md s. 5): hand computation, masking, gradients, bridging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interp
from circuits.tasks import complexity as T
from circuits.toy import ToyConfig, build_model, toy_tokenizer, train_toy
from interp.errors import InputError
from interp.models.expressive import ea_weights, expressive_attention


def _hand_ea(q, k, visible):
    """Python loops over the published definition: s = q.k/sqrt(d), s^2/(1+s^2), row-normalized."""
    n_q, n_k, d = q.shape[0], k.shape[0], q.shape[1]
    out = np.zeros((n_q, n_k))
    for i in range(n_q):
        a = []
        for j in range(n_k):
            s = sum(float(q[i, t]) * float(k[j, t]) for t in range(d)) / math.sqrt(d)
            a.append(s * s / (1 + s * s) if visible[i][j] else 0.0)
        total = sum(a)
        out[i] = [x / total if total else 0.0 for x in a]
    return out


def test_hf_attention_function_equals_hand_computation_and_masks_exactly():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 4, 8)  # [batch, heads, query, d]
    k = torch.randn(1, 1, 4, 8)  # one kv head shared by both query heads (GQA)
    v = torch.randn(1, 1, 4, 8)
    visible = torch.ones(4, 4).tril().bool()
    visible[:, 3] = False  # key 3 is padding
    additive = torch.zeros(1, 1, 4, 4).masked_fill(~visible, torch.finfo(torch.float32).min)
    module = torch.nn.Module()
    out, w = expressive_attention(module, q, k, v, additive, scaling=8**-0.5)
    for h in range(2):
        want = _hand_ea(q[0, h], k[0, 0], visible.tolist())
        np.testing.assert_allclose(w[0, h].numpy(), want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out[0, :, h].numpy(), want @ v[0, 0].numpy(), atol=1e-5)
    assert (w[..., ~visible] == 0).all()  # masked after the nonlinearity: exactly zero
    assert torch.isfinite(w).all()


def test_parallel_and_antiparallel_keys_get_equal_weight():
    scores = torch.tensor([[2.0, -2.0, 0.0]])
    w = ea_weights(scores, None)
    assert w[0, 0] == w[0, 1] and w[0, 2] == 0  # orthogonal (score 0) is suppressed
    dpa = torch.softmax(scores, -1)
    assert dpa[0, 0] > 10 * dpa[0, 1]  # dot-product attention prefers the parallel key


def test_gradients_flow_through_ea():
    model = build_model(ToyConfig(attention="ea", complexity=3)).train()
    batch = T.sample("recall,delay_sum", 3, 8, seed=1)
    logits = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1][batch.scored[:, 1:]], batch.ids[:, 1:][batch.scored[:, 1:]]
    )
    loss.backward()
    for layer in model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            g = proj.weight.grad
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.fixture(scope="module")
def ea_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ea_toy")
    cfg = ToyConfig(attention="ea", task="delay_sum", complexity=2, steps=80, n_eval=64)
    _, metrics = train_toy(cfg, out, progress=False)
    return out, metrics


def test_training_lowers_the_loss_and_saves_a_loadable_folder(ea_folder):
    out, metrics = ea_folder
    assert metrics["final_loss"] < metrics["first_loss"] - 0.2
    assert {"config.json", "model.safetensors", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_bridged_ea_model_hooks_show_ea_pattern_and_match_hf(ea_folder):
    out, _ = ea_folder
    model = interp.load_model(str(out))
    from interp.models.meta import model_meta

    assert model_meta(model).attention == "ea"
    text = "D3 D1 D4 D5 D9 D4 D3 D7"
    run = interp.run_heads(
        model, [text, "D1 D2"], hooks=["pattern", "rot_q", "rot_k"], return_logits=True
    )
    for layer in range(int(model.cfg.n_layers)):
        q = run[f"blocks.{layer}.attn.hook_rot_q"][0]  # [pos, head, d]
        k = run["rot_k", layer][0]
        n = q.shape[0]
        vis = np.tril(np.ones((n, n), dtype=bool)).tolist()
        for h in range(int(model.cfg.n_heads)):
            want = _hand_ea(q[:, h], k[:, h], vis)
            np.testing.assert_allclose(run.pattern(layer)[0, h].numpy(), want, atol=1e-5)
        pad = run.pattern(layer)[1, :, :2, 2:]  # short prompt: keys past its end are padding
        assert (pad == 0).all()
    hf = model.original_model
    ids = toy_tokenizer()(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hf_logits = hf(input_ids=ids).logits[0]
    np.testing.assert_allclose(run.logits[0, : ids.shape[1]].numpy(), hf_logits.numpy(), atol=1e-4)


def test_dpa_and_ea_differ_only_in_scoring():
    ea = build_model(ToyConfig(attention="ea", seed=3)).eval()
    dpa = build_model(ToyConfig(attention="dpa", seed=3)).eval()
    for a, b in zip(ea.parameters(), dpa.parameters(), strict=True):
        assert torch.equal(a, b)  # same seed: identical weights
    ids = T.sample("recall", 4, 2, seed=0).ids
    with torch.no_grad():
        assert not torch.allclose(ea(input_ids=ids).logits, dpa(input_ids=ids).logits)


def test_streaming_stats_refuse_ea_models(ea_folder):
    from interp.stats.capture import plain_model

    model = interp.load_model(str(ea_folder[0]))
    with pytest.raises(InputError, match="expressive attention"):
        plain_model(model)


def test_attended_pairs_match_hooks_and_masses_sum_to_one(ea_folder):
    from interp.geometry import angle_summary, attended_pairs, qk_cosines

    model = interp.load_model(str(ea_folder[0]))
    prompts = ["D1 D2 D3 D5 D8 D3", "D4 D4 D8"]
    pairs = attended_pairs(model, prompts)
    run = interp.run_heads(model, prompts, hooks=["pattern", "rot_q", "rot_k"])
    q = run["blocks.1.attn.hook_rot_q"][0].transpose(0, 1)  # [head, pos, d]
    k = run["rot_k", 1][0].transpose(0, 1)
    want = torch.nn.functional.cosine_similarity(q[2, 5], k[2, 1], dim=0)
    row = pairs.query("prompt == 0 and layer == 1 and head == 2 and query == 5 and key == 1")
    assert len(row) == 1
    assert row["cos"].item() == pytest.approx(float(want), abs=1e-5)
    assert row["weight"].item() == pytest.approx(float(run.pattern(1)[0, 2, 5, 1]), abs=1e-6)
    assert len(pairs.query("prompt == 1 and layer == 0 and head == 0")) == 3 * 4 // 2
    assert torch.allclose(qk_cosines(q, k)[2, 5, 1], want, atol=1e-6)
    s = angle_summary(pairs)
    total = s["parallel_mass"] + s["antiparallel_mass"] + s["orthogonal_mass"]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_dashboard_geometry_of_an_ea_model_equals_its_own_pattern(ea_folder):
    from dashboards.analysis import ea_pattern, layer_view
    from dashboards.state import AppState

    state = AppState()
    state.load(str(ea_folder[0]))
    assert state.status().error is None and state.status().stage.startswith("ready")
    assert "induction" in state.session.scores.columns
    view = layer_view(state.session.model, "D3 D1 D4 D5 D9 D4", 1)
    for h in range(view.pattern.shape[0]):  # the view's EA recomputation == the model's EA
        torch.testing.assert_close(
            ea_pattern(view.q[h], view.k[h]), view.pattern[h], atol=1e-5, rtol=1e-4
        )


def test_cli_train_toy_saves_reuses_and_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    runner = CliRunner()
    args = [
        "train-toy",
        "--attention",
        "dpa",
        "--task",
        "delay_sum",
        "--complexity",
        "1",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "m"),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "held-out accuracy" in first.output and (tmp_path / "m" / "metrics.json").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already holds this run" in again.output
    bad = runner.invoke(app, ["train-toy", "--attention", "cosine", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "attention must be one of" in bad.output
    bad = runner.invoke(
        app,
        ["train-toy", "--task", "delay_sum", "--complexity", "99", "--out", str(tmp_path / "y")],
    )
    assert bad.exit_code == 2 and "out of range" in bad.output
