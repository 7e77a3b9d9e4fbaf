"""Multiple-choice datasets for the calibration search: the bundled ones, groups that pool them
(the official code's task types), and JSONL files of the user's own.

Files are JSONL, one example per line: ``{"prompt": str, "choices": [str, ...], "label": int}``.
Bundled: ``interp/data/choice/<name>.{calibration,test}.jsonl`` (200 / 1,200 examples, written
by ``scripts/make_choice_datasets.py``). Groups: ``classification`` pools the calibration splits
of ``sentiment`` and ``topic``; ``multiple_choice`` those of ``yes_no``, ``arithmetic`` and
``commonsense`` (the official code finds one head set per task type on 9 datasets x 900
examples); the chosen heads are then tested on each member's own test split.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from interp.errors import InputError

BUNDLED_DATASETS = ("sentiment", "topic", "yes_no", "arithmetic", "commonsense")
DATASET_GROUPS: dict[str, tuple[str, ...]] = {
    "classification": ("sentiment", "topic"),
    "multiple_choice": ("yes_no", "arithmetic", "commonsense"),
}


def bundled_dataset(name: str, split: str) -> Path:
    if name not in BUNDLED_DATASETS:
        raise InputError(
            f"unknown bundled dataset {name!r}; choose one of {', '.join(BUNDLED_DATASETS)}, a "
            f"group ({', '.join(DATASET_GROUPS)}) or a JSONL file"
        )
    return Path(str(files("interp") / "data" / "choice" / f"{name}.{split}.jsonl"))


def members(name: str) -> tuple[str, ...]:
    """The bundled datasets a name stands for: a group's members, or the dataset itself."""
    return DATASET_GROUPS.get(name, (name,))


def pooled_rows(name: str, split: str) -> list[dict]:
    """Every example of ``split`` of a bundled dataset or of all members of a group."""
    return [row for m in members(name) for row in load_dataset(bundled_dataset(m, split))]


def load_dataset(path: Path) -> list[dict]:
    from interp.checks import read_text

    path = Path(path)
    rows = []
    for i, line in enumerate(read_text(path, "dataset file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = (
                isinstance(row["prompt"], str)
                and isinstance(row["choices"], list)
                and len(row["choices"]) >= 2
                and all(isinstance(c, str) and c for c in row["choices"])
                and isinstance(row["label"], int)
                and 0 <= row["label"] < len(row["choices"])
            )
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise InputError(
                f"{path}:{i}: each line must be JSON with 'prompt' (str), 'choices' (>= 2 "
                "non-empty str) and 'label' (index into choices)"
            )
        rows.append(row)
    if not rows:
        raise InputError(f"dataset file {path} has no examples")
    return rows
