"""Detector registry and the table every detector returns.

A new detector is one file in ``interp/heads/`` plus one ``@register`` line. It declares its
capabilities and a ``Config`` dataclass: every option that changes its tables, with its default
(thresholds from ``interp.defaults``). ``run(model, config=None, **options)`` builds the config
from ``options`` (``configure``: an unknown option or a wrong type is a clear error) and the cache
key of its tables is that config (``interp.runs.store``). Each returns a ``DetectorResult``
whose ``table`` has one row per (layer, head) with its score(s), the threshold used, a boolean
``label`` and, in ``inputs``, what it was computed on.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Protocol, get_type_hints, runtime_checkable

import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError


@dataclass
class DetectorResult:
    """Per-head table (``layer``, ``head``, score columns, ``threshold``, ``label``) + extras."""

    name: str
    table: pd.DataFrame
    inputs: dict[str, Any]
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def labelled(self) -> list[tuple[int, int]]:
        """(layer, head) of every head whose ``label`` is true, best score first."""
        t = self.table[self.table.label].sort_values("score", ascending=False)
        return list(zip(t.layer.tolist(), t["head"].tolist(), strict=True))


@runtime_checkable
class Detector(Protocol):
    """What the registry knows of a detector; every place that lists detectors reads it. The
    optional members have their defaults in ``DetectorBase`` (every detector subclasses it),
    so nothing is discovered with ``hasattr`` or ``inspect``."""

    name: ClassVar[str]
    causal_only: ClassVar[bool]  # defined for causal language models only (scan skips others)
    dashboard: ClassVar[bool]  # fast enough to compute when the dashboard loads a model
    per_prompt: ClassVar[bool]  # a sweep can score it on each prompt of any prompt set
    # scores what an intervention on the head does (a causal role score: one model run per
    # checked head), not where it attends; not in the default scan (slow on a CPU)
    interventional: ClassVar[bool]
    Config: ClassVar[type]  # frozen dataclass of every option that changes its tables
    # run() also takes workdir= (where finished pieces are kept and reused) and progress=
    resumable: ClassVar[bool]
    # its one-line finding for the run folder's summary (None: the table speaks for itself)
    summary: ClassVar[Any]  # Callable[[DetectorResult], str] | None
    # validation_metric(model, seed=1) -> the metric ``interp validate`` masks its heads on
    # (``interp.heads.metrics``; None: it cannot be validated that way)
    validation_metric: ClassVar[Any]  # Callable[..., ValidationMetric] | None

    def run(
        self, model: TransformerBridge, config: Any = None, **options: Any
    ) -> DetectorResult: ...

    def prompt_pairs(self, tokens: Any) -> Any:
        """per_prompt detectors: the (query, key) pairs whose attention mass it scores."""
        ...

    def prompt_scores(self, stats: Any, mass: Any) -> dict[str, Any]:
        """per_prompt detectors: the per-head scores of one prompt's statistics."""
        ...

    def probes(self, model: TransformerBridge, config: Any) -> list[Any]:
        """interventional detectors: the contrast their estimate is computed on."""
        ...


class DetectorBase:
    """The defaults of ``Detector``'s optional members; a detector declares its capabilities,
    ``name`` and ``Config`` itself (``register`` checks them)."""

    name: ClassVar[str]
    resumable: ClassVar[bool] = False
    summary: ClassVar[Any] = None  # a staticmethod (result) -> str in the subclass
    validation_metric: ClassVar[Any] = None  # a staticmethod (model, seed) -> metric

    def prompt_pairs(self, tokens: Any) -> Any:
        raise InputError(f"detector {self.name!r} is not per_prompt: no per-prompt pairs")

    def prompt_scores(self, stats: Any, mass: Any) -> dict[str, Any]:
        raise InputError(f"detector {self.name!r} is not per_prompt: no per-prompt scores")

    def probes(self, model: TransformerBridge, config: Any) -> list[Any]:
        raise InputError(f"detector {self.name!r} is not interventional: it has no probes")


#: name -> detector class, in registration order (the order of scans, summaries and plots)
REGISTRY: dict[str, Any] = {}
_CAPABILITIES = ("causal_only", "dashboard", "per_prompt", "interventional")


def register(cls):
    """Class decorator: make a detector available by its ``name``. A second detector with the
    same name is an error; the class must declare its capabilities (``Detector``)."""
    old = REGISTRY.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"a detector named {cls.name!r} is already registered ({old.__qualname__})"
        )
    missing = [c for c in _CAPABILITIES if not isinstance(getattr(cls, c, None), bool)]
    if missing:
        raise TypeError(f"detector {cls.__qualname__} must declare {', '.join(missing)} (bool)")
    if not issubclass(cls, DetectorBase):
        raise TypeError(f"detector {cls.__qualname__} must subclass interp.heads.base.DetectorBase")
    config = getattr(cls, "Config", None)
    if not (is_dataclass(config) and config.__dataclass_params__.frozen):
        raise TypeError(f"detector {cls.__qualname__} must declare a frozen dataclass Config")
    if any(f.default is MISSING and f.default_factory is MISSING for f in fields(config)):
        raise TypeError(f"every field of {config.__qualname__} needs a default")
    hints = get_type_hints(config)
    unbounded = [
        f.name for f in fields(config) if _numeric(hints[f.name]) and "range" not in f.metadata
    ]
    if unbounded:
        raise TypeError(
            f"{config.__qualname__}: numeric options {unbounded} must declare their range "
            "(field(default=..., metadata=between(lo, hi)))"
        )
    REGISTRY[cls.name] = cls
    return cls


def configure(detector: Any, config: Any = None, **options: Any) -> Any:
    """The detector's ``Config``: ``config`` as given, or its defaults with ``options`` applied.
    An option the detector does not have, or a value of the wrong type, is an ``InputError``
    that names the detector's options."""
    cls = detector.Config  # a class attribute: the detector class or an instance
    name = getattr(detector, "name", cls.__qualname__)
    if config is not None:
        if options:
            raise InputError(f"detector {name!r}: pass either a config or options, not both")
        if not isinstance(config, cls):
            raise InputError(f"detector {name!r} takes a {cls.__qualname__}, got {config!r}")
        return config
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(f"{f.name}={_default(f)!r}" for f in known.values())
        raise InputError(
            f"detector {name!r} has no option {', '.join(unknown)}; its options: {listed}"
        )
    hints = get_type_hints(cls)
    for key, value in options.items():
        if not _fits(value, hints[key]):
            raise InputError(
                f"detector {name!r}: option {key}={_short(value)} should be "
                f"{_type_name(hints[key])}"
            )
        bounds = known[key].metadata.get("range")
        if bounds is not None:
            _check_range(name, key, value, bounds)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def between(lo: float | int, hi: float | int) -> dict[str, tuple]:
    """Field metadata: the option's allowed range [lo, hi] (each element, for a tuple)."""
    return {"range": (lo, hi)}


def _check_range(name: str, key: str, value: Any, bounds: tuple) -> None:
    lo, hi = bounds
    for v in value if isinstance(value, (tuple, list)) else (value,):
        if v is None or isinstance(v, (str, bool)):
            continue
        if not (math.isfinite(v) and lo <= v <= hi):
            raise InputError(
                f"detector {name!r}: option {key}={_short(value)} must be a finite number in "
                f"[{lo:g}, {hi:g}]"
            )


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters (a message never renders a huge value)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _numeric(hint: Any) -> bool:
    """Whether an annotation is int/float or a tuple / optional of them."""
    import types
    import typing

    if hint in (int, float):
        return True
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (tuple, typing.Union, types.UnionType):
        return any(_numeric(a) for a in args if a is not Ellipsis and a is not type(None))
    return False


@dataclass(frozen=True)
class DetectorSpec:
    """A detector and its effective configuration (its frozen ``Config``: defaults + the
    user's options, checked), resolved once where the choices enter (``interp.runs.scan.
    detector_spec`` for the scan, validation and CLI) and passed down: the run folder runs it,
    fingerprints its tables and records it in the manifest from this one object."""

    name: str
    config: Any

    @classmethod
    def of(cls, name: str, **options: Any) -> DetectorSpec:
        return cls(name, configure(get_detector(name), **options))

    @property
    def detector(self) -> Detector:
        return get_detector(self.name)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.config)


def config_dict(detector: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The effective configuration (defaults + ``options``) as plain data: the cache key of
    the detector's tables and what the manifest records."""
    return asdict(configure(detector, **(options or {})))


def _default(f: Any) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` matches a simple annotation (float/int/bool/str, None, tuples)."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return isinstance(value, (tuple, list)) and all(_fits(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def detector_names(
    *,
    causal: bool = True,
    dashboard: bool | None = None,
    per_prompt: bool | None = None,
    interventional: bool | None = None,
) -> list[str]:
    """Registered detector names, in registration order, filtered by capability: ``causal``
    False drops the causal-only ones; ``dashboard`` / ``per_prompt`` / ``interventional``
    True keep only those, False drop them."""
    return [
        name
        for name, cls in REGISTRY.items()
        if (causal or not cls.causal_only)
        and (dashboard is None or cls.dashboard == dashboard)
        and (per_prompt is None or cls.per_prompt == per_prompt)
        and (interventional is None or cls.interventional == interventional)
    ]


def get_detector(name: str) -> Detector:
    if name not in REGISTRY:
        raise InputError(f"unknown detector {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]()


def head_frame(scores, threshold: float, **columns) -> pd.DataFrame:
    """Build the standard table from a [layer, head] ``scores`` tensor and extra columns."""
    n_layers, n_heads = scores.shape
    rows = {
        "layer": [layer for layer in range(n_layers) for _ in range(n_heads)],
        "head": [h for _ in range(n_layers) for h in range(n_heads)],
        "score": scores.reshape(-1).tolist(),
    }
    for k, v in columns.items():
        rows[k] = v.reshape(-1).tolist() if hasattr(v, "reshape") else v
    df = pd.DataFrame(rows)
    df["threshold"] = threshold
    df["label"] = df.score > threshold
    return df
