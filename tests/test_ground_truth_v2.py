"""The shipped v2 planted models (circuits/data/planted/mixture and mixture_b; 4 layers x 8
heads, ``circuits.planted_mixture``): their stored ground truth holds on the shipped weights,
their stored design checks (how well the layer index and the write norm alone find each
circuit) are what the weights give, and a method is judged by the claims rule against those
baselines, so a method that merely follows the layer or the write size fails here.

The default run re-checks what defines the truth (each circuit ablated destroys its sub-task,
everything else ablated costs <= 10 %, the sink heads carry the first-token need) with a few
ablations per model; ``make test-training`` re-establishes the whole truth by greedy pruning and
retrains from the recipe (``-m training``).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits import planted_mixture as pm
from circuits.measures import as_token_batch, task_accuracy
from circuits.planted import PLANTED, load_ground_truth, shipped_folder
from circuits.tasks import complexity as tasks
from interp.ablation import first_key_mask_hooks
from interp.ablation.heads import ablation_hooks, head_means
from interp.evidence.auc import auc
from interp.evidence.baselines import layer_index, write_norm
from interp.models import load_model

V2 = ("mixture", "mixture_b")


@pytest.fixture(scope="module", params=V2)
def shipped(request):
    folder = shipped_folder(request.param)
    return request.param, load_model(str(folder)), load_ground_truth(folder)


def _heads(model) -> list[tuple[int, int]]:
    return [(la, h) for la in range(int(model.cfg.n_layers)) for h in range(int(model.cfg.n_heads))]


def _mask(hs, n_heads: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for la, h in hs:
        out[la * n_heads + h] = True
    return out


def test_each_stored_circuit_is_what_ablation_says(shipped):
    """Per sub-task, on fresh held-out sequences: the stored accuracy, the members ablated cost
    >= DESTROYED of the task, every other head ablated costs <= SPARE (recomputed)."""
    name, model, truth = shipped
    for task, c in truth["circuits"].items():
        batch = pm.part_batch(task, PLANTED[name].seed)
        means = head_means(model, as_token_batch(batch), _heads(model))
        acc, base = task_accuracy(model, batch), pm.BASELINE[task]
        assert acc == pytest.approx(c["accuracy"], abs=1e-6)

        def drop(heads, means=means, acc=acc, batch=batch, base=base):
            hooks = ablation_hooks(model, heads, "mean", means=means)
            return (acc - task_accuracy(model, batch, hooks)) / (acc - base)

        members = [tuple(h) for h in c["members"]]
        rest = [h for h in _heads(model) if h not in members]
        assert drop(members) >= pm.DESTROYED, task
        assert drop(rest) <= pm.SPARE, task
        assert drop(rest) == pytest.approx(c["pruned_drop"], abs=1e-6)


def test_the_stored_sink_heads_carry_the_first_token_need(shipped):
    """Hiding the first key from every head costs >= RELIES nats; from every head but the stored
    sink heads at most SPARE of that."""
    name, model, truth = shipped
    seed = PLANTED[name].seed
    batches = [pm.part_batch(t, seed, pm.N_EVAL // 4) for t in tasks.MIXTURE]
    base = pm.mixture_loss(model, batches)
    sinks = [tuple(h) for h in truth["sinks"]["sink_heads"]]
    others = [h for h in _heads(model) if h not in sinks]
    every = pm.mixture_loss(model, batches, first_key_mask_hooks(model, _heads(model))) - base
    rest = pm.mixture_loss(model, batches, first_key_mask_hooks(model, others)) - base
    assert every == pytest.approx(truth["sinks"]["first_key_cost_all"], rel=1e-5)
    assert every >= pm.RELIES and rest <= pm.SPARE * every


def test_the_stored_design_checks_are_what_the_weights_give(shipped):
    """The design bounds (module ``circuits.planted_mixture``), recomputed from the weights: each
    role's share of the heads, the layer-index and write-norm AUCs against every circuit, and
    the verdict. Every role has heads. Which bounds the shipped models miss is reported in
    docs/methods.md section 9, from these stored values."""
    name, model, truth = shipped
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    n = n_layers * n_heads
    seed = PLANTED[name].seed
    batches = [as_token_batch(pm.part_batch(t, seed, 16)) for t in tasks.MIXTURE]
    norms = np.mean([write_norm(model, b) for b in batches], axis=0)
    layers = layer_index(n_layers, n_heads)
    again = pm.design_checks(truth["roles"], n_layers, n_heads, norms)
    assert again.keys() == truth["design_checks"].keys()
    for role, hs in truth["roles"].items():
        assert len(hs) > 0, role
        row = truth["design_checks"][role]
        assert again[role]["share"] == row["share"] == len(hs) / n
        assert again[role]["ok"] == row["ok"], role
        truth_mask = _mask(hs, n_heads, n)
        if "layer_index_auc" in row:  # an independent recompute of both AUCs
            assert auc(layers, truth_mask) == pytest.approx(row["layer_index_auc"], abs=1e-9)
            assert auc(norms, truth_mask) == pytest.approx(row["write_norm_auc"], abs=1e-6)


@pytest.mark.training
@pytest.mark.parametrize("name", V2)
def test_the_whole_truth_re_establishes_on_the_shipped_weights(name):
    """Greedy pruning, backups, roles and sink heads from scratch give the stored truth."""
    folder = shipped_folder(name)
    again = pm.establish(load_model(str(folder)), PLANTED[name])
    stored = load_ground_truth(folder)
    assert again["roles"] == stored["roles"]
    for task, c in stored["circuits"].items():
        assert again["circuits"][task]["kept"] == c["kept"]
        assert again["circuits"][task]["backups"] == c["backups"]


@pytest.mark.training
def test_the_v2_recipe_retrains_to_a_model_with_a_ground_truth(tmp_path):
    """Retraining ``mixture`` from its recipe (~17 min on one CPU thread) gives a model whose
    truth is established (every sub-task solved, each circuit clean and <= 25 % of the heads);
    exact heads not compared."""
    from circuits.planted import train_planted

    truth = train_planted("mixture", tmp_path / "mixture", progress=False)
    for task, c in truth["circuits"].items():
        assert c["circuit_drop"] >= pm.DESTROYED and c["pruned_drop"] <= pm.SPARE, task
        assert len(c["members"]) <= pm.MAX_ROLE_SHARE * 32, task


def _baselines(model, name: str) -> dict[str, np.ndarray]:
    """The trivial rankings the benchmark puts beside a method (``interp.evidence.baselines``):
    layer index both ways, the write norm on the model's own prompts and on each copying
    sub-task's clean prompts, the write change between its clean and corrupted prompts."""
    import torch

    from circuits.discovery import head_outputs
    from interp.evidence import baselines as b
    from interp.inputs.prompts import load_prompts, model_prompts_file
    from interp.tokens import tokenize

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    prompts = load_prompts(model_prompts_file(model))
    out = {
        "layer index": b.layer_index(n_layers, n_heads),
        "layer index (reversed)": b.layer_index(n_layers, n_heads, reversed=True),
        "write norm": write_norm(model, tokenize(model, prompts)),
    }
    for task in ("induction", "recall"):
        pairs = pm.task_pairs(model, task, seed=PLANTED[name].seed)
        x = torch.cat([head_outputs(model, pairs.clean), head_outputs(model, pairs.corrupted)])
        positive = np.r_[np.ones(len(pairs.answer), bool), np.zeros(len(pairs.answer), bool)]
        out[f"write norm ({task} prompts)"] = write_norm(model, pairs.clean)
        out[f"write change ({task})"] = b.write_change(x, positive)
    return out


def test_the_claims_rule_separates_a_detector_from_trivial_rankings(shipped):
    """The claims rule on the v2 models (docs/methods.md section 10). The previous-token
    detector on the model's own prompts *identifies* the previous-token role (the upstream heads
    of the induction and recall circuits): its lower 95 % bound is above the AUC of every
    trivial ranking, the write norm on the very prompts those heads work on included. The same
    rule does not credit a trivial ranking with the role: judged against the others, the write
    norms and the layer index do not identify it (a method that merely follows activation size
    or depth fails here). Against whole circuits a trivial ranking can win: the write norm
    identifies the delay-sum circuit of ``mixture_b`` (a design bound it misses, docs/methods.md
    section 9)."""
    from interp.evidence.claims import evidence_row
    from interp.heads import get_detector

    name, model, truth = shipped
    n_heads = int(model.cfg.n_heads)
    n = int(model.cfg.n_layers) * n_heads
    base = _baselines(model, name)
    prev = get_detector("previous_token").run(model, inputs="model_prompts").table
    prev = prev.sort_values(["layer", "head"]).score.to_numpy()
    target = _mask(truth["roles"]["previous_token"], n_heads, n)
    row = evidence_row(prev, target, base, n_boot=500)
    assert row["verdict"] == "identifies", row["verdict"]
    for trivial in base:
        if trivial.startswith("write change"):
            continue  # a contrast of the task's pairs, not a ranking without the task
        others = {k: v for k, v in base.items() if k != trivial}
        wrong = evidence_row(base[trivial], target, others, n_boot=500)
        assert wrong["verdict"] != "identifies", trivial


def test_the_sae_ranks_the_delay_sum_circuit_above_depth_and_size():
    """The discrete-code SAE node score (official recipe, 3 seeds) on delay-sum pairs ranks the
    delay-sum circuit of ``mixture`` above what the layer index and the model-prompt write norm
    give: the lower bound of its seed-mean AUC is above both (it does not beat the write norm on
    the delay-sum prompts themselves, AUC 1.00: the benchmark reports it)."""
    import torch

    from circuits.discovery import head_outputs, sae_training_examples
    from interp.evidence.claims import score_evidence
    from interp.sae import node_scores, train_sae

    folder = shipped_folder("mixture")
    model, truth = load_model(str(folder)), load_ground_truth(folder)
    pairs = pm.task_pairs(model, "delay_sum", seed=PLANTED["mixture"].seed)
    x = torch.cat([head_outputs(model, pairs.clean), head_outputs(model, pairs.corrupted)])
    positive = np.r_[np.ones(len(pairs.answer), bool), np.zeros(len(pairs.answer), bool)]
    runs = []
    for seed in range(3):
        train = sae_training_examples(len(x), 10, seed)
        sae, _ = train_sae(x[train].reshape(-1, x.shape[-1]), seed=seed, progress=False)
        runs.append(node_scores(sae.codes(x).numpy(), positive))
    target = _mask(truth["circuits"]["delay_sum"]["members"], 8, 32)
    sae_row = score_evidence(np.stack(runs), target, n_boot=500)
    base = _baselines(model, "mixture")
    for trivial in ("layer index", "layer index (reversed)", "write norm"):
        assert sae_row["interval"][0] > auc(base[trivial], target), trivial
