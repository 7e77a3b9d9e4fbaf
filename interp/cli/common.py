"""What every ``interp`` command shares: the typer app, the consoles, argument types, model
loading and the one-line error exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from interp.errors import (
    InputError,  # noqa: F401 (re-exported for the command modules)
    InterpError,
)


def refusing_bad_input(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The one error exit of every command: an ``InterpError`` (bad input, a model that cannot
    load, a missing run folder) becomes one red line on stderr and exit code 2, never a
    stack trace. The signature is kept (typer reads the options from it)."""

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InterpError as e:
            _fail(e)

    return command


class _App(typer.Typer):
    """typer's app whose every command goes through ``refusing_bad_input``."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)
        return lambda fn: register(refusing_bad_input(fn))


app = _App(
    help="Mechanistic interpretability of attention heads (offline models, head scans).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # docstrings are wrapped at 100 columns in the source: markdown joins each paragraph's
    # lines and rewraps them to the terminal (in "rich" mode every source line break stayed,
    # leaving one-word lines at 80 columns); `code` renders as code
    rich_markup_mode="markdown",
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def check_model_arg(value: str | None) -> str | None:
    """Refuse a model that is neither a known name nor an existing path before anything heavy
    is imported (torch and transformer-lens take seconds): the same message as the loader's."""
    from pathlib import Path

    from interp.known_models import KNOWN_MODELS

    if value is None or value.strip().lower() in KNOWN_MODELS or Path(value).expanduser().exists():
        return value
    _fail(
        InputError(
            f"unknown model {value!r}: it is neither a known name ({', '.join(KNOWN_MODELS)}) "
            "nor an existing local path (a Hugging Face model folder or a .gguf file). Nothing "
            "is downloaded: models load offline only."
        )
    )
    return None


ModelArg = Annotated[
    str,
    typer.Argument(
        help="Known name (smollm2-135m, minilm-l6, tiny), a local HF model folder, or a .gguf "
        "file.",
        callback=check_model_arg,
    ),
]


SaeEpochs = Annotated[int, typer.Option(min=1, help="SAE training epochs (paper: 500).")]
SaeExamples = Annotated[
    int,
    typer.Option(min=0, help="Examples the SAE trains on (paper: 10; 0 = all); codes use all."),
]


def _version(value: bool | None) -> None:
    if value:
        from interp import __version__

        out.print(f"interp {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Mechanistic interpretability of attention heads (offline models, head scans)."""


def _load(name: str):
    from interp.models import load_model

    with console.status(f"loading {name} (the first load of a GGUF converts it once) ..."):
        model = load_model(name)
    if str(model.cfg.model_name) == "tiny":
        console.print(
            "[yellow]warning:[/] 'tiny' is a randomly initialised model for tests: its scores, "
            "circuits and needle tests mean nothing (needle tests cannot succeed on it)"
        )
    return model


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


def main() -> None:  # pragma: no cover - console entry point
    app()
