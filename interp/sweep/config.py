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
            f"{what} {text!r} must be letters, digits, '.', '_' or '-' (starting with a letter "
            "or digit, no '..'): it names a folder under the sweep's output folder"
        )
    return text


def _int(value: Any, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _positive(raw: dict, key: str, default: int, minimum: int = 1) -> int:
    return _int(raw.get(key, default), f"sweep key {key!r}", minimum)


def parse_config(raw: Any, source: Path | None = None) -> SweepConfig:
    """Validate a parsed YAML mapping (see the module docstring)."""
    if not isinstance(raw, dict):
        raise InputError("a sweep file must be a YAML mapping with keys models, prompts, ...")
    unknown = set(raw) - {
        "name", "models", "prompts", "context_lengths", "detectors", "shard_size", "retries",
        "workers", "gpus_per_worker", "out",
    }  # fmt: skip
    if unknown:
        raise InputError(f"unknown sweep key(s) {sorted(unknown)}")
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
            raise InputError(f"a model must be a name or {{name: ..., label: ...}}, got {m!r}")
    if len({s.label for s in specs}) != len(specs):
        raise InputError("two models share a label; give each a distinct 'label'")
    sets = []
    for p in raw.get("prompts") or []:
        if not isinstance(p, dict):
            raise InputError(f"each prompt set is a mapping such as {{builtin: scan}}, got {p!r}")
        kinds = [k for k in _SET_KINDS if k in p]
        if len(kinds) != 1:
            raise InputError(f"a prompt set needs exactly one of {_SET_KINDS}, got {p!r}")
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
                raise InputError(f"builtin prompt sets: scan (got {p['builtin']!r})")
            sets.append(PromptSet(name, kind, "scan"))
    if not sets:
        raise InputError("sweep key 'prompts' must list at least one prompt set")
    if len({s.name for s in sets}) != len(sets):
        raise InputError("two prompt sets share a name")
    lengths = raw.get("context_lengths", [128])
    if (
        not isinstance(lengths, list)
        or not lengths
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in lengths)
    ):
        raise InputError(
            f"context_lengths must be a non-empty list of integers >= 2, got {lengths!r}"
        )
    detectors = raw.get("detectors", list(DETECTORS))
    if not isinstance(detectors, list) or not detectors:
        raise InputError(
            f"sweep key 'detectors' must be a non-empty list of {', '.join(DETECTORS)}, "
            f"got {detectors!r}"
        )
    bad = [d for d in detectors if d not in DETECTORS]
    if bad:
        raise InputError(
            f"unknown sweep detector(s) {bad}; a sweep computes {', '.join(DETECTORS)} per "
            "prompt (retrieval and anchor detectors have their own inputs: use interp scan)"
        )
    gpus = raw.get("gpus_per_worker", "auto")
    if gpus != "auto" and (not isinstance(gpus, int | float) or gpus < 0):
        raise InputError(f"gpus_per_worker must be 'auto' or a number >= 0, got {gpus!r}")
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
                f"sweep key 'out' ({out!r}) names the sweep file's own folder: results would be "
                "mixed with your files; name a folder below it"
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
