"""Write the bundled multiple-choice datasets (interp/data/choice/*.jsonl), deterministically.

Each line: {"prompt": str, "choices": [str, ...], "label": int}. Every choice starts with a
space and is one token for SmolLM2, so the official scoring (the choices' first-token logits at
the last prompt position) applies. Calibration (200) and test (1,200) splits hold disjoint
prompts; word lists are shared. Test splits are large enough to see a 2-point effect (issue:
>= 1,000 examples per task; the report states the power). Labels are balanced in expectation.
Run: python scripts/make_choice_datasets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parents[1] / "interp" / "data" / "choice"
N_CALIBRATION, N_TEST = 200, 1200

THINGS = ["movie", "food", "service", "book", "hotel", "concert", "game", "show", "room", "meal",
          "film", "album", "song", "play", "restaurant", "cafe", "trip", "tour", "museum", "park",
          "phone", "laptop", "camera", "car", "class", "course", "lecture", "party", "wedding",
          "festival", "novel", "series", "episode", "dinner", "lunch", "breakfast", "pizza",
          "coffee", "beach", "flight"]  # fmt: skip
POSITIVE = ["wonderful", "excellent", "delightful", "superb", "charming", "fantastic", "lovely",
            "great", "amazing", "brilliant", "enjoyable", "perfect", "beautiful", "pleasant",
            "outstanding", "terrific", "marvelous", "impressive", "fun", "good"]  # fmt: skip
NEGATIVE = ["terrible", "awful", "boring", "dreadful", "disappointing", "horrible", "bland",
            "poor", "dull", "miserable", "unpleasant", "mediocre", "annoying", "painful",
            "lousy", "frustrating", "ugly", "tedious", "bad", "awkward"]  # fmt: skip
SENTIMENT_FRAMES = ["The {t} was {a}.", "Honestly, the {t} was {a}.", "I thought the {t} was {a}.",
                    "What a {a} {t}.", "Overall the {t} felt {a}.", "The {t} was really {a}.",
                    "My friends said the {t} was {a}.", "In short, a {a} {t}.",
                    "We found the {t} {a}.", "To be fair, the {t} was {a}."]  # fmt: skip


def sentiment(rng):
    label = rng.randrange(2)
    adj = rng.choice(POSITIVE if label == 0 else NEGATIVE)
    text = rng.choice(SENTIMENT_FRAMES).format(t=rng.choice(THINGS), a=adj)
    return {"prompt": f"Review: {text}\nSentiment:", "choices": [" positive", " negative"],
            "label": label}  # fmt: skip


TOPICS = {
    "sports": (["The team", "The striker", "The coach", "The champion", "The goalkeeper", "The club",
                "The runner", "The captain"],
               ["won the final", "scored in the match", "lost the game", "broke the record",
                "signed a new contract", "trained for the race", "reached the semifinal",
                "celebrated the title"]),
    "science": (["The researchers", "The telescope", "The lab", "The physicists", "The biologists",
                 "The space probe", "The chemists", "The study"],
                ["measured the reaction", "found a new species", "mapped a distant galaxy",
                 "sequenced the genome", "tested the vaccine", "observed the comet",
                 "published new data on cells", "detected gravitational waves"]),
    "business": (["The company", "The bank", "The startup", "The retailer", "The firm", "Investors",
                  "The airline", "The factory"],
                 ["reported higher profits", "cut its forecast", "raised new funding",
                  "opened new stores", "bought its rival", "sold more shares",
                  "lowered its prices", "hired more workers"]),
    "politics": (["The senate", "The president", "Parliament", "The minister", "The governor",
                  "Voters", "The prime minister", "The opposition party"],
                 ["passed the budget bill", "met foreign leaders", "called an election",
                  "debated the tax law", "signed the treaty", "resigned after the vote",
                  "announced a new policy", "won the election"]),
}  # fmt: skip
LEADS = ["", "Breaking: ", "Report: ", "News: ", "Update: ", "Today: "]
WHEN = ["", " on Monday", " this week", " yesterday", " last night"]


def topic(rng):
    names = list(TOPICS)
    label = rng.randrange(len(names))
    subjects, verbs = TOPICS[names[label]]
    text = f"{rng.choice(LEADS)}{rng.choice(subjects)} {rng.choice(verbs)}{rng.choice(WHEN)}."
    return {"prompt": f"Text: {text}\nTopic:", "choices": [" " + n for n in names], "label": label}


CATEGORIES = {
    "animal": ["dog", "cat", "horse", "lion", "rabbit", "eagle", "shark", "tiger", "sheep", "mouse",
               "wolf", "bear", "fox", "goat", "whale", "frog", "snake", "monkey", "duck", "deer"],
    "fruit": ["apple", "banana", "orange", "grape", "pear", "mango", "cherry", "lemon", "peach", "plum",
              "melon", "kiwi", "lime", "apricot", "papaya", "fig", "coconut", "pineapple", "berry", "date"],
    "vehicle": ["car", "bus", "truck", "bicycle", "train", "boat", "plane", "taxi", "tractor", "van",
                "ship", "helicopter", "scooter", "motorcycle", "tram", "jeep", "yacht", "rocket",
                "submarine", "ambulance"],
    "color": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "black", "white",
              "gray", "violet", "navy", "maroon", "beige", "teal", "gold", "silver", "crimson", "cyan"],
    "tool": ["hammer", "saw", "drill", "wrench", "screwdriver", "shovel", "axe", "pliers", "chisel",
             "rake"],
    "instrument": ["piano", "guitar", "violin", "drum", "flute", "trumpet", "cello", "harp",
                   "clarinet", "saxophone"],
}  # fmt: skip
YES_NO_FRAMES = ["Question: Is {item} {art} {cat}?\nAnswer:", "Q: Is {item} {art} {cat}?\nA:",
                 "Question: Would you call {item} {art} {cat}?\nAnswer:",
                 "Question: True or false, {item} is {art} {cat}. Is that right?\nAnswer:",
                 "Question: Can {item} be called {art} {cat}?\nAnswer:",
                 "Q: Would most people say {item} is {art} {cat}?\nA:",
                 "Question: Is {item} a kind of {cat}?\nAnswer:",
                 "Quiz: Is {item} {art} {cat}? Yes or no?\nAnswer:"]  # fmt: skip


def yes_no(rng):
    cat = rng.choice(list(CATEGORIES))
    if rng.random() < 0.5:
        item, label = rng.choice(CATEGORIES[cat]), 0
    else:
        other = rng.choice([c for c in CATEGORIES if c != cat])
        item, label = rng.choice(CATEGORIES[other]), 1
        if item in CATEGORIES[cat]:  # "orange" is a fruit and a color
            label = 0
    art = "an" if cat[0] in "aeiou" else "a"
    return {"prompt": rng.choice(YES_NO_FRAMES).format(item=item, art=art, cat=cat),
            "choices": [" yes", " no"], "label": label}  # fmt: skip


ARITHMETIC_FRAMES = ["Question: Is {a} greater than {b}?\nAnswer:", "Q: Is {a} larger than {b}?\nA:",
                     "Question: Is the number {a} bigger than {b}?\nAnswer:"]  # fmt: skip


def arithmetic(rng):
    a, b = rng.sample(range(1, 100), 2)
    return {"prompt": rng.choice(ARITHMETIC_FRAMES).format(a=a, b=b), "choices": [" yes", " no"],
            "label": 0 if a > b else 1}  # fmt: skip


# (bigger, smaller) in the adjective's sense; pairs written for this project, none ambiguous
PAIRS = {
    "heavier": [("elephant", "mouse"), ("truck", "bicycle"), ("brick", "feather"), ("piano", "pencil"),
                ("whale", "fish"), ("car", "book"), ("horse", "cat"), ("rock", "leaf"),
                ("fridge", "spoon"), ("bus", "chair"), ("anchor", "coin"), ("cow", "bird"),
                ("table", "cup"), ("boulder", "pebble"), ("tractor", "dog")],
    "faster": [("car", "snail"), ("jet", "bicycle"), ("cheetah", "turtle"), ("train", "horse"),
               ("rocket", "boat"), ("horse", "snail"), ("plane", "bus"), ("rabbit", "tortoise"),
               ("motorcycle", "walker"), ("falcon", "duck"), ("bullet", "ball"), ("deer", "cow"),
               ("car", "tractor"), ("dog", "worm"), ("jet", "train")],
    "hotter": [("fire", "ice"), ("sun", "moon"), ("oven", "fridge"), ("stove", "snow"),
               ("desert", "glacier"), ("coffee", "ice"), ("lava", "water"), ("summer", "winter"),
               ("flame", "snowball"), ("sauna", "freezer"), ("candle", "icicle"), ("soup", "sorbet"),
               ("toaster", "igloo"), ("volcano", "lake"), ("furnace", "pond")],
    "bigger": [("mountain", "rock"), ("house", "shoe"), ("ocean", "pond"), ("city", "village"),
               ("tree", "flower"), ("bus", "cup"), ("whale", "shrimp"), ("planet", "marble"),
               ("stadium", "tent"), ("giraffe", "ant"), ("ship", "canoe"), ("castle", "hut"),
               ("elephant", "rabbit"), ("forest", "bush"), ("river", "stream")],
}  # fmt: skip
COMMONSENSE_FRAMES = [
    "Question: Which is {adj}, the {a} or the {b}?\nAnswer: The",
    "Q: Which one is {adj}: the {a} or the {b}?\nA: The",
    "Between the {a} and the {b}, which is {adj}?\nAnswer: The",
    "Question: The {a} or the {b}: which one is {adj}?\nAnswer: The",
    "Which of these two is {adj}: the {a} or the {b}?\nAnswer: The",
    "Tell me which is {adj}, the {a} or the {b}.\nAnswer: The",
]
OPPOSITE = {"lighter": "heavier", "slower": "faster", "colder": "hotter", "smaller": "bigger"}
PAIRS.update({adj: [(b, a) for a, b in PAIRS[of]] for adj, of in OPPOSITE.items()})
PAIRS["taller"] = [("giraffe", "mouse"), ("tower", "man"), ("tree", "grass"), ("mountain", "hill"),
                   ("adult", "baby"), ("skyscraper", "house"), ("ladder", "stool"),
                   ("lighthouse", "fence"), ("horse", "dog"), ("palm", "bush"),
                   ("crane", "car"), ("door", "box")]  # fmt: skip


def commonsense(rng):
    adj = rng.choice(list(PAIRS))
    big, small = rng.choice(PAIRS[adj])
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    return {
        "prompt": rng.choice(COMMONSENSE_FRAMES).format(adj=adj, a=first, b=second),
        "choices": [" " + first, " " + second],
        "label": 0 if first == big else 1,
    }


TASKS = {"sentiment": sentiment, "topic": topic, "yes_no": yes_no, "arithmetic": arithmetic,
         "commonsense": commonsense}  # fmt: skip


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in TASKS.items():
        rng = random.Random(f"{name}-v2")
        n_choices = len(fn(random.Random(0))["choices"])
        quota = -(-(N_CALIBRATION + N_TEST) // n_choices)  # balanced labels
        seen, rows, count = set(), [], [0] * n_choices
        for _ in range(200_000):
            ex = fn(rng)
            if ex["prompt"] not in seen and count[ex["label"]] < quota:
                seen.add(ex["prompt"])
                rows.append(ex)
                count[ex["label"]] += 1
            if len(rows) == N_CALIBRATION + N_TEST:
                break
        if len(rows) < N_CALIBRATION + N_TEST:
            raise SystemExit(f"{name}: only {len(rows)} distinct prompts")
        rng.shuffle(rows)
        for split, part in (("calibration", rows[:N_CALIBRATION]), ("test", rows[N_CALIBRATION:])):
            path = OUT / f"{name}.{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in part))
            labels = [r["label"] for r in part]
            shares = [round(labels.count(k) / len(part), 2) for k in range(len(part[0]["choices"]))]
            print(f"{path.name}: {len(part)} examples, label shares {shares}")


if __name__ == "__main__":
    main()
