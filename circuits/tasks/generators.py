"""Task generators: IOI, Colored Objects, induction on repeated random tokens."""

from __future__ import annotations

import random

import torch
from transformer_lens.model_bridge import TransformerBridge

from circuits.tasks.base import TaskBatch, load_json, pair_batch, register
from interp.inputs.text import repeated_random_tokens
from interp.tokens import from_token_ids


@register("ioi")
def ioi(model: TransformerBridge, n: int = 40, seed: int = 0) -> TaskBatch:
    """Indirect object identification (Wang et al. 2022): "When Mary and John went to the store,
    John gave a drink to" -> " Mary" (wrong: " John"). Corrupted: the second mention is a third
    name, so nothing identifies the indirect object (docs/methods.md section 4)."""
    d = load_json("ioi.json")
    rng = random.Random(seed)
    clean, corrupted, answers, wrongs = [], [], [], []
    for i in range(n):
        a, b, c = rng.sample(d["names"], 3)
        if rng.random() < 0.5:
            a, b = b, a  # the subject is first or second
        io, s = (a, b) if i % 2 == 0 else (b, a)
        template = rng.choice(d["templates"])
        fill = dict(A=a, B=b, place=rng.choice(d["places"]), object=rng.choice(d["objects"]))
        clean.append(template.format(S=s, **fill))
        corrupted.append(template.format(S=c, **fill))
        answers.append(" " + io)
        wrongs.append(" " + s)
    return pair_batch(model, "ioi", clean, corrupted, answers, wrongs)


@register("colored_objects")
def colored_objects(model: TransformerBridge, n: int = 40, seed: int = 0) -> TaskBatch:
    """Colored Objects (BIG-bench; the task of Merullo et al.'s circuit-reuse study): three
    colored objects, then "The {object} is colored" -> its color (wrong: another listed color).
    Corrupted: the question names an object that is not on the table."""
    d = load_json("colored_objects.json")
    rng = random.Random(seed)
    clean, corrupted, answers, wrongs = [], [], [], []
    for _ in range(n):
        objs = rng.sample(d["objects"], 4)
        cols = rng.sample(d["colors"], 3)
        k = rng.randrange(3)
        fill = dict(c1=cols[0], o1=objs[0], c2=cols[1], o2=objs[1], c3=cols[2], o3=objs[2])
        clean.append(d["template"].format(q=objs[k], **fill))
        corrupted.append(d["template"].format(q=objs[3], **fill))
        answers.append(" " + cols[k])
        wrongs.append(" " + cols[(k + 1) % 3])
    return pair_batch(model, "colored_objects", clean, corrupted, answers, wrongs)


@register("induction")
def induction(model: TransformerBridge, n: int = 40, seed: int = 0) -> TaskBatch:
    """Repeated random tokens r_1..r_k r_1..r_(k-1) -> r_k. Corrupted: the second half is other
    random tokens, so nothing earlier predicts the next one. Wrong: r_(k-1)."""
    half = 16
    rep = repeated_random_tokens(model, n_seqs=n, half_len=half, seed=seed).tokens
    other = repeated_random_tokens(model, n_seqs=n, half_len=half, seed=seed + 1000).tokens
    clean = rep[:, : 2 * half - 1]
    corrupted = torch.cat([rep[:, :half], other[:, : half - 1]], dim=1)
    tok = model.tokenizer
    return TaskBatch(
        "induction",
        from_token_ids(model, clean.tolist()),
        from_token_ids(model, corrupted.tolist()),
        rep[:, half - 1].clone(),
        rep[:, half - 2].clone(),
        [tok.decode(r) for r in clean],
        [tok.decode(r) for r in corrupted],
    )


@register("greater_than")
def greater_than(model: TransformerBridge, n: int = 40, seed: int = 0) -> TaskBatch:
    """Greater-than (Hanna et al. 2023): "The war lasted from the year 1739 to the year 17" ->
    a tens digit > 3. SmolLM2 writes numbers digit by digit, so the start year always ends in 9
    (then "later year" = "larger tens digit" exactly); answer = the smallest valid tens digit,
    wrong = the start year's own tens digit. Corrupted: the start year ends in 01 (Hanna et
    al.'s counterfactual), which says nothing about the decade."""
    d = load_json("greater_than.json")
    rng = random.Random(seed)
    clean, corrupted, answers, wrongs = [], [], [], []
    for _ in range(n):
        century, tens = rng.randint(12, 18), rng.randint(1, 8)
        noun = rng.choice(d["nouns"])
        text = "The {noun} lasted from the year {c}{yy} to the year {c}"
        clean.append(text.format(noun=noun, c=century, yy=f"{tens}9"))
        corrupted.append(text.format(noun=noun, c=century, yy="01"))
        answers.append(str(tens + 1))
        wrongs.append(str(tens))
    return pair_batch(model, "greater_than", clean, corrupted, answers, wrongs)


@register("docstring")
def docstring(model: TransformerBridge, n: int = 40, seed: int = 0) -> TaskBatch:
    """Docstring argument completion (Heimersheim & Janiak 2023): after ":param a" and
    ":param b" the next ":param" names the third argument of the signature. Wrong: the fourth
    argument. Corrupted: the signature's argument names are all replaced, so the docstring's
    order no longer points at an argument."""
    d = load_json("docstring.json")
    rng = random.Random(seed)
    clean, corrupted, answers, wrongs = [], [], [], []
    for _ in range(n):
        words = rng.sample(d["args"], 8)
        args, other = words[:4], words[4:]
        desc = rng.sample(d["words"], 7)
        body = (
            '    """{0} {1} {2}\n\n    :param {a}: {3} {4}\n    :param {b}: {5} {6}\n    :param'
        ).format(*desc, a=args[0], b=args[1])
        fn = rng.choice(d["functions"])
        clean.append(f"def {fn}(self, {', '.join(args)}):\n{body}")
        corrupted.append(f"def {fn}(self, {', '.join(other)}):\n{body}")
        answers.append(" " + args[2])
        wrongs.append(" " + args[3])
    return pair_batch(model, "docstring", clean, corrupted, answers, wrongs)
