"""Models whose circuits are known: trained here on tasks with a planted mechanism, with their
ground-truth heads established causally and stored next to the weights.

``PLANTED`` holds the recipes (``circuits.toy.ToyConfig``: attention-only, 2 layers x 4 heads,
dot-product attention, seeded): ``induction`` and ``recall`` (circuits, below), ``sink`` and its
negative ``no_bos`` (attention sinks, ``circuits.planted_sinks``), and the v2 models ``mixture``
and ``mixture_b`` (4 layers x 8 heads, four mechanisms and loud distractor heads in one model,
``circuits.planted_mixture``, ``circuits.head_plan``; docs/methods.md section 9).
``interp train-toy --planted NAME`` trains one and writes ``ground_truth.json``; the trained
folders ship in ``circuits/data/planted/NAME`` so tests and ``benchmarks/ground_truth.py`` need
no training.

Ground truth of the circuit models (``establish_ground_truth``), measured on held-out task
sequences with heads mean-ablated (``hook_z`` set to its mean over the real tokens of those
sequences); a task drop is normalised, (acc - acc_ablated) / (acc - baseline), so 1 = the
mechanism is gone. The baseline is what a model without the planted mechanism still gets
(``mechanism_baseline``): uniform guessing for ``induction`` (1/45), and for ``recall`` a guess
among the values present in the prompt (1/c): without key-value binding a model can still copy
*a* value, and that is not the mechanism planted.

1. ``layer_drop``: every head of a layer ablated together. Each stage of the mechanism sits in
   one layer, so each layer's drop must be >= ``DESTROYED`` (0.9), else the model solved the
   task another way and has no ground truth (an error);
2. ``recovery``: head h alone kept while the rest of its layer is ablated, the share of the task
   it restores (layer_drop - drop of the layer without h). Redundant copies of a mechanism (four
   induction heads, each able to do the job) all recover it alone, where a knock-out of one
   head would show none of them;
3. the circuit: the heads with recovery >= ``NECESSARY`` (0.5);
4. check, ``others_drop``: every head outside the circuit ablated together costs at most
   ``SPARE`` (0.1) of the task, else an error.

Roles follow from the architecture, not from an attention pattern: in an attention-only
two-layer model, copying the token after an earlier match needs the previous token's identity
in the residual stream of the key position before layer 1 reads it, so the circuit's layer-0
heads are the previous-token role and its layer-1 heads the induction role (``induction``) or
the retrieval role (``recall``: key-value pairs ``K_a V_b``, then ``? K_q``; the head copies the
value that followed the queried key). Both copy-paste from the context, the retrieval-head
behaviour (``copy_paste_scores``). Detectors are judged against these roles; they never define
them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge

from circuits import planted_mixture
from circuits.measures import (
    EVAL_SEED,
    as_token_batch,
    eval_batch,
    pairs_batch,
    task_accuracy,
)
from circuits.planted_sinks import (
    SINK_TASKS,
    describe_sink_truth,
    establish_sink_truth,
    is_sink_task,
)
from circuits.tasks import TaskBatch
from circuits.tasks import complexity as tasks
from circuits.toy import ToyConfig, train_toy
from interp.ablation.heads import ablation_hooks, head_means
from interp.errors import InputError
from interp.report import write_json
from interp.tokens import from_token_ids

DESTROYED = 0.9  # ablating a whole layer (a stage of the mechanism) removes >= 90 % of the task
NECESSARY = 0.5  # a head that alone restores >= half the task in its ablated layer is a member
SPARE = 0.1  # every other head ablated together may cost at most this share of the task

_BASE = ToyConfig(
    attention="dpa", n_layers=2, n_heads=4, d_head=16, attn_only=True, warmup=50, seed=0
)
# v2 head plans (circuits.planted_mixture): which heads each sub-task may use, spread over the
# layers; every other head is dropped at random on that sub-task's sequences during training
PLAN_A = {
    "induction": [[0, 1], [1, 4], [2, 6], [3, 2]],
    "recall": [[0, 5], [1, 0], [2, 3], [3, 7]],
    "delay_sum": [[0, 3], [1, 6], [2, 1], [3, 4]],
    "backcopy": [[1, 2], [3, 0]],
}
PLAN_B = {
    "induction": [[0, 6], [1, 1], [2, 2], [3, 5]],
    "recall": [[0, 2], [1, 7], [2, 4], [3, 3]],
    "delay_sum": [[0, 0], [1, 3], [2, 7], [3, 1]],
    "backcopy": [[0, 4], [2, 5]],
}
_V2 = replace(
    _BASE, task="mixture", complexity=1, n_layers=4, n_heads=8, mlp_width=1, steps=2000,
    batch_size=128, lr=1e-3, warmup=100, head_plan=PLAN_A, head_drop=0.9, head_quiet=3.0,
    head_loud=1.0,
)  # fmt: skip
PLANTED: dict[str, ToyConfig] = {
    "induction": replace(_BASE, task="induction", complexity=32, steps=600),
    # one scored token per sequence: larger batches, wider heads and a gentler rate learn it
    "recall": replace(
        _BASE, task="recall", complexity=4, steps=600, batch_size=256, d_head=32, lr=1e-3
    ),
    # attention sinks and their negative (circuits.planted_sinks): every prediction is scored
    "sink": replace(_BASE, task="backcopy", complexity=4, steps=1500, embed_norm=True),
    "no_bos": replace(_BASE, task="backcopy_no_bos", complexity=4, steps=1500, embed_norm=True),
    # v2 (circuits.planted_mixture): 4 layers x 8 heads on a mixture of four sub-tasks, where
    # no trivial ranking finds the roles; two training seeds
    "mixture": _V2,
    "mixture_b": replace(_V2, seed=1, head_plan=PLAN_B),
}
# the circuit models' roles by layer; the sink models have one role, "sink", of any layer
ROLES: dict[str, dict[int, str]] = {
    "induction": {0: "previous_token", 1: "induction"},
    "recall": {0: "previous_token", 1: "retrieval"},
    "sink": {},
    "no_bos": {},
    "mixture": {},  # roles from the causal effects, not the layer (circuits.planted_mixture)
    "mixture_b": {},
}
SHIPPED = Path(__file__).parent / "data" / "planted"


def mechanism_baseline(cfg: ToyConfig) -> float:
    """Accuracy left without the planted mechanism (module docstring)."""
    return 1 / cfg.complexity if cfg.task == "recall" else tasks.chance(cfg.task)


def check_name(name: str) -> str:
    if name not in PLANTED:
        raise InputError(f"unknown planted model {name!r}; choose from {', '.join(PLANTED)}")
    return name


def shipped_folder(name: str) -> Path:
    """The trained model folder that ships with the package (weights + ground_truth.json)."""
    folder = SHIPPED / check_name(name)
    if not (folder / "ground_truth.json").is_file():
        raise InputError(
            f"{folder} holds no trained model; run `interp train-toy --planted {name} --out "
            f"{folder}`"
        )
    return folder


def load_ground_truth(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "ground_truth.json").read_text())


@torch.no_grad()
def establish_ground_truth(
    model: TransformerBridge, cfg: ToyConfig, roles: dict[int, str]
) -> dict[str, Any]:
    """The causal ground truth of a trained planted model (module docstring)."""
    batch = eval_batch(cfg)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    means = head_means(model, as_token_batch(batch), heads)
    acc, chance = task_accuracy(model, batch), mechanism_baseline(cfg)
    if acc - chance < 0.5 * (1 - chance):
        raise InputError(
            f"the model solves too little of the task to have a ground truth (accuracy "
            f"{acc:.3f}, chance {chance:.3f}); train longer"
        )

    def drop(ablated: list[tuple[int, int]]) -> float:
        if not ablated:
            return 0.0
        hooks = ablation_hooks(model, ablated, "mean", means=means)
        return (acc - task_accuracy(model, batch, hooks)) / (acc - chance)

    layer_drop, recovery = [], []
    for la in range(n_layers):
        layer = [(la, h) for h in range(n_heads)]
        layer_drop.append(drop(layer))
        recovery.append([layer_drop[-1] - drop([x for x in layer if x != hd]) for hd in layer])
    circuit = [(la, h) for la, h in heads if recovery[la][h] >= NECESSARY]
    others = [hd for hd in heads if hd not in circuit]
    others_drop = drop(others)
    weak = [la for la in range(n_layers) if layer_drop[la] < DESTROYED]
    if weak or others_drop > SPARE:
        raise InputError(
            f"no clean ground truth: layer drops {[round(d, 3) for d in layer_drop]} (each "
            f"should be >= {DESTROYED}), heads outside the circuit cost {others_drop:.3f} "
            f"(should be <= {SPARE})"
        )
    return {
        "task": cfg.task,
        "complexity": cfg.complexity,
        "accuracy": acc,
        "chance": chance,  # the mechanism baseline (mechanism_baseline)
        "uniform_chance": tasks.chance(cfg.task),
        "n_eval_sequences": len(batch.ids),
        "ablation": "mean (hook_z set to its mean over the held-out sequences' tokens)",
        "destroyed": DESTROYED,
        "necessary": NECESSARY,
        "spare": SPARE,
        "layer_drop": layer_drop,
        "recovery": recovery,
        "circuit": [list(hd) for hd in circuit],
        "joint_drop": drop(circuit),
        "others_drop": others_drop,
        "roles": {
            role: [list(hd) for hd in circuit if roles.get(hd[0]) == role]
            for role in dict.fromkeys(roles.values())
        },
        "config": asdict(cfg),
    }


def establish(model: TransformerBridge, name: str) -> dict[str, Any]:
    """The ground truth of planted model ``name``: a circuit by ablation, or sinks by hiding
    the first token (``circuits.planted_sinks``)."""
    cfg = PLANTED[check_name(name)]
    if cfg.task == "mixture":
        return planted_mixture.establish(model, cfg)
    if is_sink_task(cfg):
        return establish_sink_truth(model, cfg)
    return establish_ground_truth(model, cfg, ROLES[name])


def describe(truth: dict[str, Any]) -> str:
    """One line on a stored ground truth (for the CLI)."""
    if truth.get("version") == 2:
        return planted_mixture.describe(truth)
    if truth["task"] in SINK_TASKS:
        return describe_sink_truth(truth)
    roles = "; ".join(
        f"{role}: {', '.join(f'L{la}.H{h}' for la, h in heads) or 'none'}"
        for role, heads in truth["roles"].items()
    )
    return (
        f"held-out accuracy {truth['accuracy']:.3f} (chance {truth['chance']:.3f}); ground "
        f"truth by ablation: {roles}; ablating a whole layer costs "
        f"{', '.join(f'{d:.0%}' for d in truth['layer_drop'])} of the task, all heads outside "
        f"the circuit {truth['others_drop']:.0%}"
    )


def train_planted(name: str, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train planted model ``name`` into ``out`` and write its ``ground_truth.json``."""
    from interp.models import load_model

    cfg = PLANTED[check_name(name)]
    train_toy(cfg, out, progress=progress)
    truth = establish(load_model(str(out)), name)
    write_json({"name": name, **truth}, Path(out) / "ground_truth.json")
    return truth


def labels(truth: dict[str, Any], role: str | None, n_layers: int, n_heads: int) -> np.ndarray:
    """[layer * head] bool: the heads of ``role`` (None: the whole circuit)."""
    heads = truth["circuit"] if role is None else truth["roles"].get(role, [])
    out = np.zeros(n_layers * n_heads, dtype=bool)
    for la, h in heads:
        out[la * n_heads + h] = True
    return out


def task_pairs(model: TransformerBridge, cfg: ToyConfig, n: int = 64) -> TaskBatch:
    """Clean prompts the planted model answers and corrupted twins of the same length that
    remove the information its mechanism copies (for patching and the SAE). induction: each
    prompt is cut at a scored position; its twin redraws the first copy of the segment (nothing
    to copy); wrong = the token the redrawn copy holds where the answer was. recall: the twin
    asks for another key of the same pairs; wrong = that key's value."""
    rng = np.random.default_rng(cfg.seed + EVAL_SEED + 1)
    first, vocab = len(tasks.SPECIALS), len(tasks.VOCAB)
    clean, corrupted, answers, wrongs = [], [], [], []
    while len(clean) < n:
        if cfg.task == "induction":
            ids, r, h = tasks.induction_sequence(cfg.complexity, rng)
            t = int(rng.integers(r + h + 1, r + 2 * h))  # predict ids[t] = ids[t - h]
            x = ids[:t]
            x[r : r + h] = rng.integers(first, vocab, size=h).tolist()
            wrong = (
                x[t - h] if x[t - h] != ids[t] else first + (ids[t] + 1 - first) % (vocab - first)
            )
            clean.append(ids[:t])
            corrupted.append(x)
            answers.append(ids[t])
            wrongs.append(wrong)
        elif cfg.task == "recall":  # K V pairs, "?", the queried key; the twin asks another key
            c = cfg.complexity
            ids, _ = tasks.GENERATORS["recall"](c, rng)
            keys, values = ids[0 : 2 * c : 2], ids[1 : 2 * c : 2]
            q = keys.index(ids[2 * c + 1])
            others = [i for i in range(c) if values[i] != values[q]]
            if not others:
                continue
            other = int(rng.choice(others))
            clean.append(ids[: 2 * c + 2])
            corrupted.append([*ids[: 2 * c + 1], keys[other]])
            answers.append(values[q])
            wrongs.append(values[other])
        else:
            raise InputError(f"no task pairs for the {cfg.task!r} task")
    return pairs_batch(model, f"planted_{cfg.task}", clean, corrupted, answers, wrongs)


def copy_tests(
    cfg: ToyConfig, n: int, rng: np.random.Generator
) -> list[tuple[list[int], int, int, range]]:
    """Needle tests on the planted task: (ids, needle start, needle end, query positions).
    induction: the needle is the segment's first copy, the queries predict the repeated copy;
    recall: the needle is the queried key's value, the query is the last position."""
    tests = []
    for _ in range(n):
        if cfg.task == "induction":
            ids, r, h = tasks.induction_sequence(cfg.complexity, rng)
            tests.append((ids, r, r + h, range(r + h, r + 2 * h - 1)))
        elif cfg.task == "recall":
            c = cfg.complexity
            ids, _ = tasks.GENERATORS["recall"](c, rng)  # pairs, "?", key, its value
            value = 2 * ids[0 : 2 * c : 2].index(ids[2 * c + 1]) + 1
            tests.append((ids, value, value + 1, range(2 * c + 1, 2 * c + 2)))
        else:
            raise InputError(f"no needle tests for the {cfg.task!r} task")
    return tests


@torch.no_grad()
def copy_paste_scores(
    model: TransformerBridge, cfg: ToyConfig, n: int = 64, tests: list | None = None
) -> np.ndarray:
    """[layer, head] retrieval-head score (Wu et al.'s copy-paste rule) on needle tests built
    from the planted task (``copy_tests``). At each query position the model predicts greedily;
    a head copy-pastes when its top key lies in the needle and holds the predicted token,
    adding 1 / |answer tokens|. As in the official code a test counts when more than half of
    its answer is predicted right, and a head's score is the mean over counted tests."""
    from interp.attention import run_heads
    from interp.heads.retrieval import copy_paste_hits

    if tests is None:  # else given (``circuits.planted_mixture.copy_tests``)
        tests = copy_tests(cfg, n, np.random.default_rng(cfg.seed + EVAL_SEED + 3))
    batch = from_token_ids(model, [ids for ids, _, _, _ in tests])
    run = run_heads(model, batch, hooks=["pattern"], return_logits=True)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    argmax = torch.stack([run.pattern(la).argmax(-1) for la in range(n_layers)])  # [L, b, H, q]
    predicted = run.logits.argmax(-1)  # [b, pos]
    per_test = []
    for b, (ids, start, end, steps) in enumerate(tests):
        prompt = torch.tensor(ids)
        right = [int(predicted[b, q]) == ids[q + 1] for q in steps]
        if sum(right) <= 0.5 * len(right):
            continue
        score = torch.zeros(n_layers, n_heads)
        for q in steps:
            score += copy_paste_hits(argmax[:, b, :, q], prompt, start, end, int(predicted[b, q]))
        per_test.append(score / len(right))
    if not per_test:
        return np.zeros((n_layers, n_heads))
    return torch.stack(per_test).mean(0).numpy()
