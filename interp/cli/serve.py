"""The dashboard command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp import checks
from interp.cli.common import (
    app,
    check_model_arg,
    console,
)
from interp.errors import InputError
from interp.known_models import DEFAULT_MODEL


@app.command()
def dashboard(
    run: Annotated[
        Path | None,
        typer.Option("--run", help="A run folder written by `interp scan` (its head tables)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model name or path (default: the model of --run's manifest, else smollm2-135m).",
            callback=check_model_arg,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8050,
    root: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folder whose models and run folders the page may load when --host is not "
            "loopback (repeat; default: the working folder)."
        ),
    ] = None,
) -> None:
    """Serve the attention explorer (head atlas, attention maps, geometry, ablation) in a browser.

    The model loads in the background (the page shows progress). Without --run the fast
    detectors are computed on load; with --run every table of that scan is shown.
    """
    from dashboards.serve import make_server

    if run is not None and not run.is_dir():
        raise InputError(f"run folder {run} does not exist; write one with `interp scan`")
    try:
        model = model or run_model(run) or DEFAULT_MODEL
        checks.listen_address(host, port)
        server, state = make_server(
            model, str(run) if run else None, host=host, port=port, roots=root
        )
    except OSError as e:  # the port is in use, or the address is not this machine's
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    console.print(
        f"interp dashboard on [bold]http://{host}:{server.effective_port}[/] "
        f"(loading {model} in the background; Ctrl-C stops)"
    )
    try:
        server.run()
    except KeyboardInterrupt:
        server.close()


def run_model(run: Path | None) -> str | None:
    """The model a run folder was written for (its manifest), or None without a run."""
    if run is None:
        return None
    from interp.runs.folder import RunFolder

    return RunFolder(run).manifest().get("model", {}).get("name")
