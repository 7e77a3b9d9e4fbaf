"""The declarative sweep file (YAML) of ``interp sweep`` and its validation.

Example (``examples/sweep.yaml``)::

    name: sinks-vs-length
    models: [tiny, smollm2-135m]          # names, folders, or {name: ..., label: ...}
    prompts:
      - {name: scan, builtin: scan}       # the bundled scan prompts
      - {name: mine, file: prompts.txt}   # one prompt per line (\\n = newline)
      - {name: ioi, task: ioi, n: 32}     # a circuits task (circuits/data/<task>.json)
      - {name: text, haystack: 4}         # 4 haystack windows per context length
    context_lengths: [64, 256, 1024]      # used by haystack sets
    detectors: [head_stats, sink, previous_token, duplicate_token, induction]
    shard_size: 4                          # prompts per shard (the unit of work and of resume)
    retries: 2                             # attempts after the first, per shard
    workers: 2                             # Ray actors per model
    gpus_per_worker: auto                  # 1 GPU (or a share) per actor if the cluster has GPUs

Every error names the key that is wrong and what it accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interp.errors import InputError


def sweep_detectors() -> tuple[str, ...]:
    """Per-prompt measures a sweep computes: ``head_stats`` and every registered detector that
    declares ``per_prompt`` (the registry is the one list)."""
    from interp.heads import detector_names

    return ("head_stats", *detector_names(per_prompt=True))


DETECTORS = sweep_detectors()
_SET_KINDS = ("builtin", "file", "task", "haystack")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str


@dataclass(frozen=True)
class PromptSet:
    name: str
    kind: str  # builtin | file | task | haystack
    source: str = ""  # file path, task name or builtin name
    n: int = 0  # task examples / haystack windows per length


@dataclass
class SweepConfig:
    name: str
    models: list[ModelSpec]
    prompts: list[PromptSet]
    context_lengths: list[int] = field(default_factory=lambda: [128])
    detectors: list[str] = field(default_factory=lambda: list(DETECTORS))
    shard_size: int = 4
    retries: int = 2
    workers: int = 2
    gpus_per_worker: float | str = "auto"
    out: Path | None = None
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "models": [vars(m) for m in self.models],
            "prompts": [vars(p) for p in self.prompts],
            "context_lengths": self.context_lengths,
            "detectors": self.detectors,
            "shard_size": self.shard_size,
            "retries": self.retries,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
        }


def _label(name: str) -> str:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or name).strip("_.") or "model"
    return _folder_name(label, "model label")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _folder_name(value: Any, what: str) -> str:
    """A name that becomes one folder or file name under the sweep's output folder: letters,
    digits, '.', '_', '-', starting with a letter or digit (no '/', no '..': a sweep never
    writes outside its folder)."""
    text = str(value)
    if not _NAME.fullmatch(text) or ".." in text:
        raise InputError(
            f"{what} {_short(text)} must be letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit, no '..'): it names a folder under the sweep's output folder"
        )
    return text


MAX_NODES, MAX_DEPTH = 10_000, 20  # a sweep file is small; more is an alias bomb or a mistake
MAX_COUNT = 100_000  # prompts or windows per set, shards, retries, workers
MAX_LENGTH = 1_000_000  # tokens of a context length


def _short(value: Any, limit: int = 60) -> str:
    """repr(value) cut to ``limit`` characters: a message never renders a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_size(raw: Any) -> None:
    """Refuse a parsed YAML document with more than MAX_NODES values or nested deeper than
    MAX_DEPTH, before anything walks it: YAML aliases can make a few lines stand for billions
    of values (the walk stops at the budget, so it is bounded too)."""
    count = 0
    stack = [(raw, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            raise InputError(
                f"the sweep file holds more than {MAX_NODES:,} values or nests deeper than "
                f"{MAX_DEPTH} levels (YAML aliases that expand?); a sweep needs a few dozen"
            )
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in list(node.values())[: MAX_NODES + 1])
            stack.extend((k, depth + 1) for k in list(node)[: MAX_NODES + 1])
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node[: MAX_NODES + 1])


def _int(value: Any, what: str, minimum: int, maximum: int = MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InputError(
            f"{what} must be an integer in [{minimum}, {maximum:,}], got {_short(value)}"
        )
    return value


def _positive(raw: dict, key: str, default: int, minimum: int = 1) -> int:
    return _int(raw.get(key, default), f"sweep key {key!r}", minimum)


def parse_config(raw: Any, source: Path | None = None) -> SweepConfig:
    """Validate a parsed YAML mapping (see the module docstring)."""
    check_size(raw)
    if not isinstance(raw, dict):
        raise InputError("a sweep file must be a YAML mapping with keys models, prompts, ...")
    unknown = set(raw) - {
        "name", "models", "prompts", "context_lengths", "detectors", "shard_size", "retries",
        "workers", "gpus_per_worker", "out",
    }  # fmt: skip
    if unknown:
        raise InputError(f"unknown sweep key(s) {_short(sorted(map(str, unknown)))}")
    models = raw.get("models")
    if not models or not isinstance(models, list):
        raise InputError("sweep key 'models' must be a non-empty list of model names or folders")
    specs = []
    for m in models:
        if isinstance(m, str):
            specs.append(ModelSpec(m, _label(m)))
        elif isinstance(m, dict) and isinstance(m.get("name"), str):
            specs.append(ModelSpec(m["name"], _label(str(m.get("label") or m["name"]))))
        else:
            raise InputError(
                f"a model must be a name or {{name: ..., label: ...}}, got {_short(m)}"
            )
    if len({s.label for s in specs}) != len(specs):
        raise InputError("two models share a label; give each a distinct 'label'")
    sets: list[Any] = []
    for p in raw.get("prompts") or []:
        if not isinstance(p, dict):
            raise InputError(
                f"each prompt set is a mapping such as {{builtin: scan}}, got {_short(p)}"
            )
        kinds = [k for k in _SET_KINDS if k in p]
        if len(kinds) != 1:
            raise InputError(f"a prompt set needs exactly one of {_SET_KINDS}, got {_short(p)}")
        kind = kinds[0]
        name = _folder_name(p.get("name") or f"{kind}{len(sets)}", "prompt set name")
        if kind == "haystack":
            n = _int(p["haystack"], "haystack: N (windows per length)", 1)
            sets.append(PromptSet(name, kind, "haystack", n))
        elif kind == "task":
            n = _int(p.get("n", 16), f"n of task set {name!r}", 1)
            sets.append(PromptSet(name, kind, str(p["task"]), n))
        elif kind == "file":
            path = Path(str(p["file"]))
            if not path.is_absolute() and source is not None:
                path = source.parent / path
            if not path.is_file():
                raise InputError(f"prompt file {path} (set {name!r}) does not exist")
            sets.append(PromptSet(name, kind, str(path)))
        else:
            if p["builtin"] != "scan":
                raise InputError(f"builtin prompt sets: scan (got {_short(p['builtin'])})")
            sets.append(PromptSet(name, kind, "scan"))
    if not sets:
        raise InputError("sweep key 'prompts' must list at least one prompt set")
    if len({s.name for s in sets}) != len(sets):
        raise InputError("two prompt sets share a name")
    lengths = raw.get("context_lengths", [128])
    if (
        not isinstance(lengths, list)
        or not lengths
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_LENGTH for n in lengths
        )
    ):
        raise InputError(
            f"context_lengths must be a non-empty list of integers in [2, {MAX_LENGTH:,}], got "
            f"{_short(lengths)}"
        )
    detectors = raw.get("detectors", list(DETECTORS))
    if not isinstance(detectors, list) or not detectors:
        raise InputError(
            f"sweep key 'detectors' must be a non-empty list of {', '.join(DETECTORS)}, "
            f"got {_short(detectors)}"
        )
    bad = [d for d in detectors if d not in DETECTORS]
    if bad:
        raise InputError(
            f"unknown sweep detector(s) {bad}; a sweep computes {', '.join(DETECTORS)} per "
            "prompt (retrieval and anchor detectors have their own inputs: use interp scan)"
        )
    gpus = raw.get("gpus_per_worker", "auto")
    if gpus != "auto" and (not isinstance(gpus, int | float) or gpus < 0):
        raise InputError(f"gpus_per_worker must be 'auto' or a number >= 0, got {_short(gpus)}")
    out = raw.get("out")
    if out is not None:
        from interp.checks import out_folder

        if not isinstance(out, str) or not out.strip():
            raise InputError(f"sweep key 'out' must name a folder, got {str(out)[:60]!r}")
        path = Path(out)
        if not path.is_absolute() and source is not None:  # like every path: from the file
            path = source.parent / path
        if source is not None and path.resolve() == source.parent.resolve():
            raise InputError(
                f"sweep key 'out' ({_short(out)}) names the sweep file's own folder: results "
                "would be mixed with your files; name a folder below it"
            )
        out = out_folder(path, "sweep key 'out'")
    return SweepConfig(
        name=_folder_name(raw.get("name") or (source.stem if source else "sweep"), "sweep name"),
        models=specs,
        prompts=sets,
        context_lengths=sorted(set(lengths)),
        detectors=list(dict.fromkeys(detectors)),
        shard_size=_positive(raw, "shard_size", 4),
        retries=_positive(raw, "retries", 2, minimum=0),
        workers=_positive(raw, "workers", 2),
        gpus_per_worker=gpus if gpus == "auto" else float(gpus),
        out=Path(out) if out else None,
        source=source,
    )


def load_config(path: str | Path) -> SweepConfig:
    from interp.checks import read_text

    path = Path(path)
    text = read_text(path, "sweep file")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}") from e
    return parse_config(raw, path)
