"""Write the bundled multiple-choice datasets (interp/data/choice/*.jsonl), deterministically.

Each line: {"prompt": str, "choices": [str, ...], "label": int}; the model scores every
choice by the log-probability of its tokens after the prompt. Calibration and test splits hold
disjoint prompts (word lists are shared). Run: python scripts/make_choice_datasets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parents[1] / "interp" / "data" / "choice"


def sentiment(rng):
    things = [
        "movie",
        "food",
        "service",
        "book",
        "hotel",
        "concert",
        "game",
        "show",
        "room",
        "meal",
    ]
    pos = [
        "wonderful",
        "excellent",
        "delightful",
        "superb",
        "charming",
        "fantastic",
        "lovely",
        "great",
    ]
    neg = ["terrible", "awful", "boring", "dreadful", "disappointing", "horrible", "bland", "poor"]
    frames = ["The {t} was {a}.", "Honestly, the {t} was {a}.", "I thought the {t} was {a}.",
              "What a {a} {t}.", "Overall the {t} felt {a}."]  # fmt: skip
    label = rng.randrange(2)
    adj = rng.choice(pos if label == 0 else neg)
    text = rng.choice(frames).format(t=rng.choice(things), a=adj)
    return {"prompt": f"Review: {text}\nSentiment:", "choices": [" positive", " negative"],
            "label": label}  # fmt: skip


TOPICS = {
    "sports": ["The team won the final after a late goal.", "The striker scored twice in the match.",
               "The coach praised the players after the game.", "She won the marathon in record time.",
               "The tennis match went to a fifth set.", "The league announced the new season schedule."],
    "science": ["The telescope detected light from a distant galaxy.", "Researchers sequenced the genome of the plant.",
                "The experiment measured the speed of the reaction.", "A new fossil shows how birds evolved.",
                "The chemists made a stronger kind of glass.", "The probe sent back images of the moon."],
    "business": ["The company reported higher profits this quarter.", "Shares fell after the bank cut its forecast.",
                 "The startup raised money from investors.", "The retailer will open forty new stores.",
                 "Oil prices rose as demand grew.", "The firm agreed to buy its main rival."],
    "politics": ["The senate passed the new budget bill.", "The president met foreign leaders at the summit.",
                 "Voters went to the polls in the election.", "The minister resigned after the vote.",
                 "Parliament debated the new tax law.", "The governor signed the bill into law."],
}  # fmt: skip


def topic(rng):
    names = list(TOPICS)
    label = rng.randrange(len(names))
    lead = rng.choice(["", "Breaking: ", "Today, ", "Report: ", "News: ", "Update: "])
    text = rng.choice(TOPICS[names[label]])
    text = lead + (text[0].lower() + text[1:] if lead == "Today, " else text)
    return {"prompt": f"Text: {text}\nTopic:", "choices": [" " + n for n in names], "label": label}


CATEGORIES = {
    "animal": ["dog", "cat", "horse", "lion", "rabbit", "eagle", "shark", "tiger", "sheep", "mouse"],
    "fruit": ["apple", "banana", "orange", "grape", "pear", "mango", "cherry", "lemon", "peach", "plum"],
    "vehicle": ["car", "bus", "truck", "bicycle", "train", "boat", "plane", "taxi", "tractor", "van"],
    "color": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "black", "white"],
}  # fmt: skip


def yes_no(rng):
    cat = rng.choice(list(CATEGORIES))
    if rng.random() < 0.5:
        item, label = rng.choice(CATEGORIES[cat]), 0
    else:
        other = rng.choice([c for c in CATEGORIES if c != cat])
        item, label = rng.choice(CATEGORIES[other]), 1
        if item in CATEGORIES[cat]:  # "orange" is a fruit and a color
            label = 0
    article = "an" if cat[0] in "aeiou" else "a"
    return {"prompt": f"Question: Is {item} {article} {cat}?\nAnswer:", "choices": [" yes", " no"],
            "label": label}  # fmt: skip


def arithmetic(rng):
    a, b = rng.sample(range(1, 100), 2)
    return {"prompt": f"Question: Is {a} greater than {b}?\nAnswer:", "choices": [" yes", " no"],
            "label": 0 if a > b else 1}  # fmt: skip


PAIRS = {
    "heavier": [("elephant", "mouse"), ("truck", "bicycle"), ("brick", "feather"), ("piano", "pencil"),
                ("whale", "fish"), ("car", "book")],
    "faster": [("car", "snail"), ("jet", "bicycle"), ("cheetah", "turtle"), ("train", "horse"),
               ("rocket", "boat"), ("horse", "snail")],
    "hotter": [("fire", "ice"), ("sun", "moon"), ("oven", "fridge"), ("stove", "snow"),
               ("desert", "glacier"), ("coffee", "ice")],
    "bigger": [("mountain", "rock"), ("house", "shoe"), ("ocean", "pond"), ("city", "village"),
               ("tree", "flower"), ("bus", "cup")],
}  # fmt: skip


FRAMES = [
    "Question: Which is {adj}, the {a} or the {b}?\nAnswer: The",
    "Q: Which one is {adj}: the {a} or the {b}?\nA: The",
    "Between the {a} and the {b}, which is {adj}?\nAnswer: The",
]


def commonsense(rng):
    adj = rng.choice(list(PAIRS))
    big, small = rng.choice(PAIRS[adj])
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    return {
        "prompt": rng.choice(FRAMES).format(adj=adj, a=first, b=second),
        "choices": [" " + first, " " + second],
        "label": 0 if first == big else 1,
    }


TASKS = {"sentiment": sentiment, "topic": topic, "yes_no": yes_no, "arithmetic": arithmetic,
         "commonsense": commonsense}  # fmt: skip


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in TASKS.items():
        rng = random.Random(f"{name}-v1")
        seen, rows = set(), []
        for _ in range(5000):
            ex = fn(rng)
            key = ex["prompt"]
            if key not in seen:
                seen.add(key)
                rows.append(ex)
            if len(rows) == 160:
                break
        rng.shuffle(rows)
        n_cal = min(48, len(rows) // 3)
        for split, part in (("calibration", rows[:n_cal]), ("test", rows[n_cal:])):
            path = OUT / f"{name}.{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in part))
            print(f"{path.name}: {len(part)} examples")


if __name__ == "__main__":
    main()
