"""Serving the dashboard with waitress (a production WSGI server; no Flask debug server)."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

from waitress.server import create_server

from dashboards.app import MAX_REQUEST_BYTES, create_app
from dashboards.state import AppState
from interp.known_models import DEFAULT_MODEL

#: more than the users of the load test (50): the views of the picked head answer in the
#: request (each waits for the model lock on its own thread), so a cheap view never queues
#: behind them; the button-started heavy views are background jobs (dashboards/jobs.py)
THREADS = 64
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def make_server(
    model: str = DEFAULT_MODEL,
    run_dir: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    state: AppState | None = None,
    load: bool = True,
    roots: list[Path] | None = None,
):
    """A waitress server for the app (``port=0`` picks a free port: ``server.effective_port``).

    With ``load`` the model (and run folder) start loading in the background; the page shows
    the progress. Returns ``(server, state)``; ``server.run()`` serves, ``server.close()`` stops.
    On loopback the server answers only requests addressed to a loopback name; bound beyond
    loopback, the page may load model and run folders only under ``roots`` (default: the
    working folder).
    """
    loopback = host in LOOPBACK
    if state is None:
        state = AppState(roots=None if loopback and roots is None else (roots or [Path.cwd()]))
    allowed = LOOPBACK if loopback else None
    app = create_app(state, default_model=model, default_run=run_dir, allowed_hosts=allowed)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # load tests fill the queue
    # waitress refuses a larger body itself, while it arrives (Flask's own limit answers 413
    # only after the whole upload: a 100 MB body kept the server busy for over a minute)
    server = create_server(
        app.server,
        host=host,
        port=port,
        threads=THREADS,
        ident="interp",
        max_request_body_size=MAX_REQUEST_BYTES,
    )
    if load:
        state.load_async(model, run_dir)
    return server, state


def serve_in_thread(model: str, run_dir: str | None = None, **kw):
    """Start a server on a background thread (tests, load tests): ``(server, state, url)``."""
    server, state = make_server(model, run_dir, port=kw.pop("port", 0), **kw)

    def run() -> None:
        try:
            server.run()
        except OSError as e:  # server.close() from another thread ends the loop's select
            if e.errno != errno.EBADF:
                raise

    threading.Thread(target=run, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.effective_port}"
