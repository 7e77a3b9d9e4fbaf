"""Planted models v2 (``circuits.planted_mixture``): the pieces of the construction, each
against a hand-built case or a dense computation (the shipped models' truths:
tests/test_ground_truth_v2.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from circuits import planted_mixture as pm
from circuits.head_plan import LOUD_RANGE, head_plan_hooks, loud_heads, loud_targets
from circuits.tasks import complexity as tasks
from circuits.toy import ToyConfig, build_model
from interp.ablation.heads import ablation_hooks, head_means


def test_mixture_sequences_record_their_sub_task_and_start_with_bos():
    batch = tasks.sample("mixture", 1, 64, seed=0)
    assert batch.parts is not None and set(batch.parts) == set(tasks.MIXTURE)
    assert (batch.ids[:, 0] == tasks.INDEX["<bos>"]).all()
    for i, part in enumerate(batch.parts):
        words = tasks.to_text(batch.ids[i].tolist()).split()[1:]
        if part == "delay_sum":
            assert all(w.startswith("D") for w in words)
        if part == "recall":
            assert words[-3] == "?" and words[words.index(words[-2]) + 1] == words[-1]


def test_recall_needles_hold_the_queried_value():
    for ids, start, end, queries in pm.copy_tests("recall", 20):
        (q,) = list(queries)
        assert ids[start - 1] == ids[q] and ids[start] == ids[q + 1] and end == start + 1


def test_induction_segment_is_the_first_copy():
    rng = np.random.default_rng(0)
    for _ in range(100):
        ids, scored = tasks.mixture_part("induction", rng)
        start, h = pm._induction_segment(scored)
        assert ids[start : start + h] == ids[start + h : start + 2 * h]


@pytest.fixture(scope="module")
def toy_bridge(tmp_path_factory):
    """An untrained toy model folder with the toy vocabulary, loaded as interp loads any."""
    from circuits.toy import save_toy
    from interp.models import load_model

    cfg = ToyConfig(attention="dpa", task="mixture", complexity=1, n_layers=2, n_heads=4,
                    d_head=8, attn_only=True, mlp_width=1)  # fmt: skip
    folder = tmp_path_factory.mktemp("toy")
    save_toy(build_model(cfg), folder, {"config": {"task": "mixture", "complexity": 1,
                                                   "seed": 0}})  # fmt: skip
    return load_model(str(folder))


@pytest.mark.parametrize("task", ["induction", "recall", "delay_sum"])
def test_task_pairs_answer_the_clean_and_not_the_corrupted_prompt(toy_bridge, task):
    """Same lengths; the answer is what the task rule gives on the clean prompt, the wrong token
    what it gives on the corrupted one."""
    pairs = pm.task_pairs(toy_bridge, task, n=20)
    assert pairs.clean.tokens.shape == pairs.corrupted.tokens.shape
    assert (pairs.answer != pairs.wrong).all()
    for c, k, a, w in zip(pairs.prompts, pairs.corrupted_prompts, pairs.answer, pairs.wrong,
                          strict=True):  # fmt: skip
        c, k = c.split(), k.split()
        assert len(c) == len(k)
        if task == "recall":
            table = dict(zip(c[1:-2:2], c[2:-2:2], strict=True))  # key -> its value
            assert tasks.INDEX[table[c[-1]]] == a and tasks.INDEX[table[k[-1]]] == w
        if task == "delay_sum":

            def rule(x):
                return tasks.INDEX[f"D{(int(x[-1][1:]) + int(x[-2][1:])) % 10}"]

            assert rule(c) == a and rule(k) == w
        if task == "induction":  # the token after the last token's earlier copy
            prev = [i for i in range(len(c) - 1) if c[i] == c[-1]]
            assert prev and tasks.INDEX[c[prev[-1] + 1]] == a
            assert c[-1] == k[-1] and c != k


def _toy_batch():
    from circuits.measures import as_token_batch

    return as_token_batch(tasks.sample("mixture", 1, 8, seed=3))


def test_direct_hooks_of_a_last_layer_head_equal_its_mean_ablation(toy_bridge):
    """In an attention-only model a head of the last layer has no later reader: setting its
    direct write to the mean must give exactly the logits of mean-ablating it."""
    model, batch = toy_bridge, _toy_batch()
    head = (int(model.cfg.n_layers) - 1, 1)
    means = head_means(model, batch, [head])
    with torch.no_grad(), model.hooks(fwd_hooks=pm.direct_hooks(model, head, means[head])):
        direct = model(batch.tokens, attention_mask=batch.attention_mask)
    with torch.no_grad(), model.hooks(fwd_hooks=ablation_hooks(model, [head], "mean", means=means)):
        ablated = model(batch.tokens, attention_mask=batch.attention_mask)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(direct[real], ablated[real], rtol=1e-4, atol=1e-4)


def test_direct_hooks_of_an_early_head_leave_later_layers_reading_its_write(toy_bridge):
    """For a layer-0 head the final residual stream changes by exactly (mean - z) W_O, while
    mean-ablating it changes it by more (the layer-1 heads read the new write too)."""
    model, batch = toy_bridge, _toy_batch()
    head = (0, 2)
    means = head_means(model, batch, [head])
    name = f"blocks.{int(model.cfg.n_layers) - 1}.hook_resid_post"
    args = {"attention_mask": batch.attention_mask, "names_filter": [name, "blocks.0.attn.hook_z"]}
    _, clean = model.run_with_cache(batch.tokens, **args)
    with model.hooks(fwd_hooks=pm.direct_hooks(model, head, means[head])):
        _, hooked = model.run_with_cache(batch.tokens, **args)
    with model.hooks(fwd_hooks=ablation_hooks(model, [head], "mean", means=means)):
        _, ablated = model.run_with_cache(batch.tokens, **args)
    want = (means[head] - clean["blocks.0.attn.hook_z"][:, :, 2]) @ model.W_O[0, 2]
    real = batch.attention_mask.bool()
    got = hooked[name] - clean[name]
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-5)
    assert not torch.allclose((ablated[name] - clean[name])[real], want[real], atol=1e-5)


def test_head_plan_detaches_and_drops_the_heads_outside_the_plan():
    """On a recall row, only recall's heads learn; other heads get no gradient from it, and a
    dropped head's output is zero."""
    cfg = ToyConfig(attention="dpa", task="mixture", complexity=1, n_layers=2, n_heads=4,
                    d_head=8, attn_only=True, mlp_width=1,
                    head_plan={"recall": [[0, 1], [1, 2]]}, head_drop=0.0,
                    head_detach=True)  # fmt: skip
    model = build_model(cfg)
    set_batch, _, remove = head_plan_hooks(model, cfg)
    rows = [tasks.mixture_part("recall", np.random.default_rng(0))]
    batch = tasks.pad(rows)
    batch.parts = ["recall"]
    set_batch(batch, torch.Generator().manual_seed(0))
    out = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    out.sum().backward()
    for la, layer in enumerate(model.model.layers):
        g = layer.self_attn.v_proj.weight.grad.reshape(4, 8, -1).abs().sum((1, 2))  # per head
        for h in range(4):
            planned = [la, h] in cfg.head_plan["recall"]
            assert (g[h] > 0) == planned, (la, h)
    remove()
    drop_cfg = replace(cfg, head_drop=0.999)
    set_batch, _, remove = head_plan_hooks(model, drop_cfg)
    set_batch(batch, torch.Generator().manual_seed(0))
    seen = {}
    hook = model.model.layers[0].self_attn.o_proj.register_forward_hook(
        lambda m, a, o: seen.setdefault("x", a[0].detach())
    )
    model(input_ids=batch.ids, attention_mask=batch.attention_mask)
    hook.remove()
    remove()
    x = seen["x"].reshape(1, -1, 4, 8)
    assert x[..., 0, :].abs().sum() == 0 and x[..., 1, :].abs().sum() > 0  # H1 is planned


def _recall_row() -> tasks.Batch:
    batch = tasks.pad([tasks.mixture_part("recall", np.random.default_rng(0))])
    batch.parts = ["recall"]
    return batch


def test_loud_heads_are_the_unplanned_ones_with_seeded_targets():
    plan = {"recall": [[0, 1], [1, 2]], "induction": [[1, 0]]}
    assert loud_heads(plan, 2, 4) == [(0, 0), (0, 2), (0, 3), (1, 1), (1, 3)]
    a, b = loud_targets(loud_heads(plan, 2, 4), 32, seed=0), loud_targets([(0, 0)], 32, 0)
    f, u = a[(0, 0)]
    assert LOUD_RANGE[0] <= f <= LOUD_RANGE[1] and float(u.norm()) == pytest.approx(1.0)
    assert b[(0, 0)][0] == f and torch.equal(b[(0, 0)][1], u)  # the same draw for the head
    assert loud_targets([(0, 0)], 32, seed=1)[(0, 0)][0] != f


def test_loud_heads_are_kept_detached_and_pay_their_distance_to_the_target():
    """A loud head is never dropped, learns nothing from the task loss, and its penalty is the
    mean over real tokens of ||z W_O - f m u||^2 / m^2, m the planned heads' mean write norm (a
    dense recompute)."""
    cfg = ToyConfig(attention="dpa", task="mixture", complexity=1, n_layers=2, n_heads=4,
                    d_head=8, attn_only=True, mlp_width=1,
                    head_plan={"recall": [[0, 1], [1, 2]]}, head_drop=0.999,
                    head_loud=1.0)  # fmt: skip
    model = build_model(cfg)
    set_batch, penalty, remove = head_plan_hooks(model, cfg)
    batch, rng = _recall_row(), torch.Generator().manual_seed(0)
    seen: dict[int, torch.Tensor] = {}
    grabs = [
        layer.self_attn.o_proj.register_forward_pre_hook(
            lambda m, a, la=la: seen.__setitem__(la, a[0].detach())
        )
        for la, layer in enumerate(model.model.layers)
    ]
    set_batch(batch, rng)
    model(input_ids=batch.ids, attention_mask=batch.attention_mask)  # sets the running m
    planned_norm = []
    for la, h in cfg.head_plan["recall"]:
        w = model.model.layers[la].self_attn.o_proj.weight[:, h * 8 : (h + 1) * 8]
        planned_norm.append(
            (seen[la].reshape(1, -1, 4, 8)[0, :, h] @ w.detach().T).norm(dim=-1).mean()
        )
    m = float(sum(planned_norm) / 2)
    set_batch(batch, rng)
    out = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    for g in grabs:
        g.remove()
    targets = loud_targets(loud_heads(cfg.head_plan, 2, 4), 32, cfg.seed)
    want = []
    for (la, h), (f, u) in targets.items():
        x = seen[la].reshape(1, -1, 4, 8)[0, :, h]
        assert x.abs().sum() > 0  # never dropped (head_drop 0.999)
        w = model.model.layers[la].self_attn.o_proj.weight[:, h * 8 : (h + 1) * 8].detach()
        want.append(((x @ w.T - f * m * u) ** 2).sum(-1).mean() / m**2)
    pen = penalty()
    assert float(pen.detach()) == pytest.approx(float(sum(want) / len(want)), rel=1e-4)
    model.zero_grad()
    out.sum().backward()  # the task path alone: the loud heads' weights get nothing
    for la, layer in enumerate(model.model.layers):
        g = layer.self_attn.v_proj.weight.grad.reshape(4, 8, -1).abs().sum((1, 2))
        for h in range(4):
            assert (g[h] == 0) == ((la, h) in targets), (la, h)
    remove()


def test_late_loud_heads_are_silent_before_their_start():
    """The experimental schedule (cfg.extra, methods.md section 9): before ``loud_start`` x
    steps a loud head's output is zeroed and pays nothing; from the start on it writes and pays
    its distance to the (ramped) target."""
    cfg = ToyConfig(attention="dpa", task="mixture", complexity=1, n_layers=2, n_heads=4,
                    d_head=8, attn_only=True, mlp_width=1, steps=10,
                    head_plan={"recall": [[0, 1], [1, 2]]}, head_drop=0.5, head_loud=1.0,
                    extra={"loud_start": 0.2, "loud_ramp": 0.2})  # fmt: skip
    model = build_model(cfg)
    set_batch, penalty, remove = head_plan_hooks(model, cfg)
    batch, rng = _recall_row(), torch.Generator().manual_seed(0)
    seen: dict[int, torch.Tensor] = {}
    grabs = [layer.self_attn.o_proj.register_forward_pre_hook(  # after the plan's hook
        lambda m, a, la=la: seen.__setitem__(la, a[0].detach())) for la, layer in
        enumerate(model.model.layers)]  # fmt: skip
    loud = loud_heads(cfg.head_plan, 2, 4)
    for step in range(4):  # steps 0, 1: silent; 2, 3: on (ramp 0, then 1/2)
        set_batch(batch, rng)
        model(input_ids=batch.ids, attention_mask=batch.attention_mask)
        pen = penalty()
        pen = pen if isinstance(pen, float) else float(pen.detach())
        written = [float(seen[la].reshape(1, -1, 4, 8)[0, :, h].abs().sum()) for la, h in loud]
        if step < 2:
            assert pen == 0.0 and written == [0.0] * len(loud)
        else:
            assert pen > 0 and min(written) > 0
    for g in grabs:
        g.remove()
    remove()


def test_design_checks_on_a_hand_built_truth():
    """A role in the last layer fails the layer-index bound; one spread over layers passes."""
    norms = np.arange(32, dtype=float)[::-1].copy()  # write norm: shallow heads largest
    roles = {"a circuit": [[3, h] for h in range(4)],
             "b circuit": [[0, 0], [1, 3], [2, 6], [3, 1]]}  # fmt: skip
    checks = pm.design_checks(roles, 4, 8, norms)
    # 4 of layer 3 vs 24 shallower heads (wins) and 4 of layer 3 (ties): (96 + 8) / 112
    assert checks["a circuit"]["layer_index_auc"] == pytest.approx(104 / 112)
    assert not checks["a circuit"]["ok"]
    assert abs(checks["b circuit"]["layer_index_auc"] - 0.5) <= 0.2
    assert checks["b circuit"]["share"] == 4 / 32
    assert checks["b circuit"]["ok"] == (checks["b circuit"]["write_norm_auc"] <= 0.7)
