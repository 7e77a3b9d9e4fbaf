"""Exception types of the toolkit. Every message says what was wrong and what to do."""

from __future__ import annotations


class InterpError(Exception):
    """Base class of every error raised on purpose by interp."""


class ModelNotFoundError(InterpError, LookupError):
    """A model name is neither a known name nor an existing local path."""


class ModelLoadError(InterpError):
    """A model path exists but could not be loaded (missing files, unsupported architecture)."""


class InputError(InterpError, ValueError):
    """Bad user input: empty prompts, unknown hook names, out-of-range layers or heads."""
