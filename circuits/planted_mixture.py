"""Planted models v2: several mechanisms in one model, so that a trivial ranking cannot find them.

The v1 planted models (``circuits.planted``: 2 layers x 4 heads, one task) have circuits of 6 of
8 heads, all of one layer per role: the layer index ranks them perfectly and a random ranking
reaches AUC >= 11/12 with probability 0.071. The v2 models (4 layers x 8 heads, attention-only)
are trained on ``mixture`` (``circuits.tasks.complexity``): every sequence starts with
``<bos>`` and is one of four sub-tasks (induction over random tokens, key-value recall,
delay-sum arithmetic, bigram-backcopy), so the heads of each mechanism share their
layers with heads doing other work. A head plan (``ToyConfig.head_plan``) spreads each
mechanism over the layers during training: heads outside a sub-task's plan are dropped at
random on its sequences and pay for writing there, so they learn to stay quiet on it
(docs/methods.md section 9). Nothing below reads the plan: the truth is what the model does.

Ground truth, established causally on held-out sequences of each sub-task (``establish``), with
heads mean-ablated (``hook_z`` set to its mean over that sub-task's real tokens) and the task
drop normalised, (acc - acc_ablated) / (acc - baseline), baseline = what a model without the
mechanism still gets (``BASELINE``: uniform guessing; recall: a guess among the 6 values shown):

1. the circuit of a sub-task (induction, recall, delay_sum), by greedy pruning at head level
   (ACDC's rule with mean ablation): heads in order of their own drop, each is ablated for good
   when the ablated set still costs at most ``SPARE`` (0.1) of the task;
2. backups and redundant copies. Backups (as the backup name movers of Wang et al. 2022):
   when ablating what pruning kept costs less than ``DESTROYED``, other heads take the task
   over; with the kept heads ablated, pruned heads are added back by largest gain until the
   kept heads and their backups ablated cost >= ``DESTROYED``, else there is no clean circuit
   (an error). This also finds redundant copies, of which pruning keeps one by chance;
3. roles inside a circuit: a member's *direct* effect is the drop when only its write to the
   final residual stream (what the unembedding reads) is set to its mean, all else intact. A
   member whose direct effect is >= ``DIRECT`` (half) of its total effect (a backup's: measured
   with the circuit ablated) is an output head
   (the ``induction`` or ``retrieval`` role), the others are upstream heads (the
   ``previous_token`` role of both copying circuits). Delay-sum heads form one role,
   ``delay_sum``: an unrelated task, whose heads are distractors for every other role;
4. sink heads: the first key (``<bos>``) hidden from heads (``first_key_mask_hooks``) on all
   four sub-tasks' scored predictions; hidden from every head it must cost >= ``RELIES``
   (0.05 nats); heads are taken in order of their own cost until hiding it from all the others
   costs <= ``SPARE`` of that (as ``circuits.planted_sinks``).

Design checks (``design_checks``, stored beside the truth and asserted by the tests): every
role and circuit holds <= 25 % of the heads, the layer index scores |AUC - 0.5| <= 0.2 against
every circuit, and the mean write norm scores AUC <= 0.7 against it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge

from circuits.measures import EVAL_SEED, N_EVAL, as_token_batch, pairs_batch, task_accuracy
from circuits.tasks import complexity as tasks
from circuits.toy import ToyConfig
from interp.ablation import first_key_mask_hooks
from interp.ablation.heads import ablation_hooks, head_means
from interp.errors import InputError
from interp.hook_names import act_name

Head = tuple[int, int]
DESTROYED = 0.9  # ablating a circuit removes >= 90 % of its task
SPARE = 0.1  # what is pruned (or, for sinks, every other head) may cost at most 10 %
DIRECT = 0.5  # an output head carries >= half of its effect on the unembedding directly
RELIES = 0.05  # nats: the first key hidden from every head must cost this much
SOLVED = 0.8  # a sub-task must be solved to >= 80 % of the way from its baseline to 1
MAX_ROLE_SHARE = 0.25
MAX_LAYER_SKEW = 0.2  # |AUC(layer index) - 0.5|
MAX_WRITE_NORM_AUC = 0.7
N_INDUCTION_TOKENS = len(tasks.VOCAB) - len(tasks.SPECIALS) - len(tasks.TASK_TOKENS)
BASELINE = {"induction": 1 / N_INDUCTION_TOKENS, "recall": 1 / 6, "delay_sum": 1 / tasks.N_DIGITS}
# sub-task -> (output role, upstream role)
ROLES = {
    "induction": ("induction", "previous_token"),
    "recall": ("retrieval", "previous_token"),
    "delay_sum": ("delay_sum", "delay_sum"),
}


def part_batch(task: str, seed: int = 0, n: int = N_EVAL) -> tasks.Batch:
    """Held-out sequences of one sub-task (a seed range training never uses)."""
    return tasks.sample_part(task, n, seed + EVAL_SEED + tasks.MIXTURE.index(task))


def direct_hooks(model: TransformerBridge, head: Head, mean_z: torch.Tensor) -> list:
    """Hooks that set only ``head``'s write to the final residual stream to its mean write: the
    residual stream after the last layer gets (mean z - z) W_O of the head added, every later
    head still reads the head's real write."""
    la, h = head
    w_o = model.W_O[la, h].detach()  # [d_head, d_model]
    seen: dict[str, torch.Tensor] = {}

    def grab(z: torch.Tensor, hook) -> torch.Tensor:  # [batch, pos, head, d_head]
        seen["z"] = z[:, :, h].detach().clone()
        return z

    def patch(resid: torch.Tensor, hook) -> torch.Tensor:  # [batch, pos, d_model]
        return resid + (mean_z.to(resid) - seen["z"]) @ w_o.to(resid)

    last = int(model.cfg.n_layers) - 1
    return [(act_name("z", la), grab), (f"blocks.{last}.hook_resid_post", patch)]


@torch.no_grad()
def circuit_of(model: TransformerBridge, task: str, seed: int = 0) -> dict[str, Any]:
    """The circuit of one sub-task, its backups and the role of each member (module
    docstring, steps 1-3)."""
    batch = part_batch(task, seed)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    means = head_means(model, as_token_batch(batch), heads)
    acc, chance = task_accuracy(model, batch), BASELINE[task]
    if acc - chance < SOLVED * (1 - chance):
        raise InputError(
            f"the model solves too little of {task} to have a ground truth (accuracy {acc:.3f},"
            f" baseline {chance:.3f}); train longer"
        )

    def drop(ablated: list[Head], extra=()) -> float:
        hooks = ablation_hooks(model, ablated, "mean", means=means) if ablated else []
        return (acc - task_accuracy(model, batch, [*hooks, *extra])) / (acc - chance)

    single = {hd: drop([hd]) for hd in heads}
    pruned: list[Head] = []
    for hd in sorted(heads, key=lambda x: (single[x], x)):
        if drop([*pruned, hd]) <= SPARE:
            pruned.append(hd)
    kept = [hd for hd in heads if hd not in pruned]
    # backups: with the circuit ablated, the pruned heads that take the task over, added by
    # largest gain until the circuit and its backups ablated cost >= DESTROYED
    backups: list[Head] = []
    circuit_drop = drop(kept)
    while kept and circuit_drop < DESTROYED:
        rest = [x for x in pruned if x not in backups]
        gain = {x: drop([*kept, *backups, x]) for x in rest}
        best = max(rest, key=lambda x: (gain[x], x), default=None)
        if best is None or gain[best] <= circuit_drop:
            break
        backups.append(best)
        circuit_drop = gain[best]
    if not kept or circuit_drop < DESTROYED:
        raise InputError(
            f"no clean {task} circuit: the heads left after pruning ({len(kept)}) and their "
            f"backups ({len(backups)}) cost {circuit_drop:.3f} of the task when ablated (should "
            f"be >= {DESTROYED})"
        )
    pruned = [x for x in pruned if x not in backups]
    base = drop(pruned)
    total = {c: drop([*pruned, c]) - base for c in kept}
    direct = {c: drop(pruned, direct_hooks(model, c, means[c])) - base for c in kept}
    context = [*pruned, *kept]  # a backup's effect shows with the circuit ablated
    ctx = drop(context)
    for b in backups:
        total[b] = drop([*context, b]) - ctx
        direct[b] = drop(context, direct_hooks(model, b, means[b])) - ctx
    output, upstream = ROLES[task]
    role = {c: output if direct[c] >= DIRECT * total[c] else upstream for c in [*kept, *backups]}
    members = sorted(role)
    return {
        "accuracy": acc,
        "baseline": chance,
        "single_drop": [[single[(la, h)] for h in range(n_heads)] for la in range(n_layers)],
        "pruned_drop": base,
        "circuit_drop": circuit_drop,
        "kept": [list(c) for c in kept],
        "backups": [list(b) for b in backups],
        "total_effect": {f"L{c[0]}.H{c[1]}": total[c] for c in total},
        "direct_effect": {f"L{c[0]}.H{c[1]}": direct[c] for c in direct},
        "members": [list(m) for m in members],
        "roles": {
            r: [list(m) for m in members if role[m] == r] for r in dict.fromkeys(ROLES[task])
        },
    }


def mixture_loss(model: TransformerBridge, batches: list[tasks.Batch], hooks=()) -> float:
    """Mean next-token loss (nats) over the scored predictions of ``batches``."""
    total, count = 0.0, 0
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        for b in batches:
            logits = model(b.ids, attention_mask=b.attention_mask)[:, :-1].float()
            nll = -torch.log_softmax(logits, -1).gather(-1, b.ids[:, 1:, None])[..., 0]
            keep = b.scored[:, 1:]
            total, count = total + float(nll[keep].sum()), count + int(keep.sum())
    return total / count


def sink_truth(model: TransformerBridge, seed: int = 0) -> dict[str, Any]:
    """Heads that need the first key (module docstring, step 4)."""
    batches = [part_batch(t, seed, N_EVAL // 4) for t in tasks.MIXTURE]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    base = mixture_loss(model, batches)

    def cost(hidden: list[Head]) -> float:
        return mixture_loss(model, batches, first_key_mask_hooks(model, hidden)) - base

    cost_all = cost(heads)
    if cost_all < RELIES:
        raise InputError(
            f"no sink to plant: hiding the first token from every head costs {cost_all:.3f} "
            f"nats (should be >= {RELIES})"
        )
    per_head = {hd: cost([hd]) for hd in heads}
    sinks: list[Head] = []
    others = cost_all
    for hd in sorted(heads, key=lambda x: -per_head[x]):
        if others <= SPARE * cost_all:
            break
        sinks.append(hd)
        others = cost([x for x in heads if x not in sinks])
    return {
        "loss": base,
        "first_key_cost_all": cost_all,
        "first_key_cost": [[per_head[(la, h)] for h in range(n_heads)] for la in range(n_layers)],
        "others_cost": others,
        "sink_heads": [list(hd) for hd in sinks],
    }


def roles_of(circuits: dict[str, dict], sinks: dict) -> dict[str, list[list[int]]]:
    """Every role's heads: the circuits' roles merged (previous_token from both copying
    circuits), the sink heads, and each whole circuit as ``<task> circuit``."""
    roles: dict[str, set[tuple[int, int]]] = {}
    for task, c in circuits.items():
        for r, hs in c["roles"].items():
            roles.setdefault(r, set()).update(map(tuple, hs))
        roles[f"{task} circuit"] = set(map(tuple, c["members"]))
    roles["sink"] = set(map(tuple, sinks["sink_heads"]))
    return {r: sorted([list(h) for h in hs]) for r, hs in roles.items()}


def design_checks(
    roles: dict[str, list[list[int]]], n_layers: int, n_heads: int, write_norm: np.ndarray
) -> dict[str, Any]:
    """Per role: its share of the heads, the AUC of the layer index and of the write norm
    (``interp.evidence``), and whether the v2 design bounds hold (module docstring)."""
    from interp.evidence.auc import auc
    from interp.evidence.baselines import layer_index

    layers = layer_index(n_layers, n_heads)
    out = {}
    for r, hs in roles.items():
        truth = np.zeros(n_layers * n_heads, dtype=bool)
        for la, h in hs:
            truth[la * n_heads + h] = True
        row: dict[str, Any] = {"n_heads": int(truth.sum()), "share": float(truth.mean())}
        if 0 < truth.sum() < len(truth):
            row["layer_index_auc"] = auc(layers, truth)
            row["write_norm_auc"] = auc(write_norm, truth)
        row["ok"] = bool(
            row["share"] <= MAX_ROLE_SHARE
            and (
                not r.endswith("circuit")
                or (abs(row.get("layer_index_auc", 0.5) - 0.5) <= MAX_LAYER_SKEW
                    and row.get("write_norm_auc", 0.0) <= MAX_WRITE_NORM_AUC)
            )
        )  # fmt: skip
        out[r] = row
    return out


def establish(model: TransformerBridge, cfg: ToyConfig) -> dict[str, Any]:
    """The ground truth of a trained v2 model: circuits, roles, sink heads and design checks."""
    from interp.evidence.baselines import write_norm

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    circuits = {t: circuit_of(model, t, cfg.seed) for t in ROLES}
    sinks = sink_truth(model, cfg.seed)
    roles = roles_of(circuits, sinks)
    prompts = [part_batch(t, cfg.seed, 16) for t in tasks.MIXTURE]
    norms = np.mean([write_norm(model, as_token_batch(b)) for b in prompts], axis=0)
    members = sorted({tuple(h) for c in circuits.values() for h in c["members"]})
    return {
        "task": cfg.task,
        "version": 2,
        "ablation": "mean (hook_z set to its mean over each sub-task's held-out tokens)",
        "thresholds": {
            "destroyed": DESTROYED,
            "spare": SPARE,
            "direct": DIRECT,
            "relies": RELIES,
            "solved": SOLVED,
        },  # fmt: skip
        "circuits": circuits,
        "sinks": sinks,
        "roles": roles,
        "circuit": [list(h) for h in members],  # every head of some circuit
        "design_checks": design_checks(roles, n_layers, n_heads, norms),
        "config": asdict(cfg),
    }


def describe(truth: dict[str, Any]) -> str:
    """One line on a stored v2 ground truth (for the CLI)."""
    parts = [
        f"{t}: accuracy {c['accuracy']:.3f}, {len(c['members'])} heads"
        for t, c in truth["circuits"].items()
    ]
    roles = "; ".join(
        f"{r}: {', '.join(f'L{la}.H{h}' for la, h in hs) or 'none'}"
        for r, hs in truth["roles"].items()
        if not r.endswith("circuit")
    )
    bad = [r for r, c in truth["design_checks"].items() if not c["ok"]]
    checks = f"design checks fail for {', '.join(bad)}" if bad else "design checks hold"
    return f"{'; '.join(parts)}. Roles: {roles}. {checks}"


def task_pairs(model: TransformerBridge, task: str, n: int = 64, seed: int = 0):
    """Clean / corrupted pairs of one sub-task (``circuits.tasks.TaskBatch``), ``<bos>`` first,
    same lengths, for patching, the SAE and the write-change baseline. induction: cut at a
    scored position, the twin redraws the segment's first copy (nothing to copy); recall: the
    twin asks another key (wrong = its value); delay_sum: the twin changes the digit two
    back (wrong = the sum it then gives)."""

    rng = np.random.default_rng(seed + EVAL_SEED + 7)
    first = len(tasks.SPECIALS)
    n_tokens = len(tasks.VOCAB) - len(tasks.TASK_TOKENS)
    clean, corrupted, answers, wrongs = [], [], [], []
    while len(clean) < n:
        ids, scored = tasks.mixture_part(task, rng)
        if task == "induction":
            start, h = _induction_segment(scored)
            t = int(rng.choice(np.flatnonzero(scored)))  # predict ids[t] = ids[t - h]
            x = list(ids[:t])
            x[start : start + h] = rng.integers(first, n_tokens, size=h).tolist()
            wrong = x[t - h]
            if wrong == ids[t]:
                continue
        elif task == "recall":  # <bos> K V K V ... ? K_q V_q
            c = 6
            keys, values = ids[1 : 2 * c + 1 : 2], ids[2 : 2 * c + 2 : 2]
            q = keys.index(ids[2 * c + 2])
            others = [i for i in range(c) if values[i] != values[q]]
            if not others:
                continue
            other = int(rng.choice(others))
            t = 2 * c + 3
            x = [*ids[: t - 1], keys[other]]
            wrong = values[other]
        elif task == "delay_sum":
            t = int(rng.integers(4, len(ids)))  # predict ids[t] = D((d[t-1] + d[t-2]) % 10)
            x = list(ids[:t])
            digit = tasks.VOCAB[x[t - 2]][1:]
            new = (int(digit) + int(rng.integers(1, tasks.N_DIGITS))) % tasks.N_DIGITS
            x[t - 2] = tasks.INDEX[f"D{new}"]
            prev = int(tasks.VOCAB[x[t - 1]][1:])
            wrong = tasks.INDEX[f"D{(prev + new) % tasks.N_DIGITS}"]
        else:
            raise InputError(f"no task pairs for the {task!r} sub-task")
        clean.append(list(ids[:t]))
        corrupted.append(x)
        answers.append(ids[t])
        wrongs.append(wrong)
    return pairs_batch(model, f"mixture_{task}", clean, corrupted, answers, wrongs)


def copy_tests(task: str, n: int, seed: int = 0) -> list[tuple[list[int], int, int, range]]:
    """Needle tests (ids, needle start, needle end, query positions) for the copy-paste rule:
    induction: the needle is the repeated segment's first copy, the queries predict its second
    copy; recall: the needle is the queried key's value, the query is the last position."""
    rng = np.random.default_rng(seed + EVAL_SEED + 11)
    tests = []
    for _ in range(n):
        ids, scored = tasks.mixture_part(task, rng)
        if task == "induction":
            start, h = _induction_segment(scored)
            tests.append((ids, start, start + h, range(start + h, start + 2 * h - 1)))
        elif task == "recall":  # <bos> K V K V ... ? K_q V_q
            c = 6
            value = 2 + 2 * ids[1 : 2 * c + 1 : 2].index(ids[2 * c + 2])
            tests.append((ids, value, value + 1, range(2 * c + 2, 2 * c + 3)))
        else:
            raise InputError(f"no needle tests for the {task!r} sub-task")
    return tests


def _induction_segment(scored: list[bool]) -> tuple[int, int]:
    """(start, length) of the repeated segment's first copy in an ``induction`` sequence: the
    scored positions are the second copy after its first token, h - 1 of them."""
    q = np.flatnonzero(scored)
    h = len(q) + 1
    return int(q[0]) - h - 1, h
