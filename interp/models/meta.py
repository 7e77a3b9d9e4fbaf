"""What interp knows about a loaded model beyond transformer-lens' ``cfg``, on one typed object
(``model_meta(model)``) instead of loose attributes set on the bridge or its cfg."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelMeta:
    """``load_seconds``: how long ``load_model`` took; ``content_key``: the digest of the files
    the weights were read from (the cache key of every table: a folder overwritten in place is
    another model); ``attention``: "dpa" (softmax) or "ea" (expressive attention,
    ``interp.models.expressive``); ``plain_model``: the plain Hugging Face rebuild sharing the
    weights (``interp.stats.capture.plain_model``, built on first use)."""

    load_seconds: float | None = None
    content_key: str | None = None
    attention: str = "dpa"
    plain_model: Any = None


def model_meta(model: Any) -> ModelMeta:
    """The model's ``ModelMeta`` (created empty on first access)."""
    meta = model.__dict__.get("_interp_meta")
    if meta is None:
        meta = ModelMeta()
        model.__dict__["_interp_meta"] = meta
    return meta
