"""Shared page pieces of the dashboard: box / error / row styles, a titled section, and the
one-line message a callback shows instead of a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from dash import Input, State, dcc, html

from dashboards import ids
from interp.errors import InterpError

log = logging.getLogger("interp.dashboard")
BOX = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "10px", "margin": "8px 0"}
ERR = {"color": "#b00020", "whiteSpace": "pre-wrap"}
ROW = {"display": "flex", "gap": "12px", "alignItems": "center", "flexWrap": "wrap"}


#: every figure's camera button saves an SVG (vector; convert it to PNG anywhere)
GRAPH_CONFIG = {
    "toImageButtonOptions": {"format": "svg", "filename": "interp"},
    "displaylogo": False,
}


#: what a figure shows before anything is computed: a sentence, not empty axes
BEFORE_LOAD = "Nothing here yet: load a model (section 1) and a prompt; this view fills in."


def placeholder(text: str = BEFORE_LOAD) -> dict:
    """A figure (plotly's JSON form) holding one sentence and no axes."""
    return {
        "data": [],
        "layout": {
            "annotations": [{"text": text, "showarrow": False, "x": 0.5, "y": 0.5,
                             "xref": "paper", "yref": "paper"}],
            "xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 160,
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        },
    }  # fmt: skip


def graph(id: str) -> dcc.Graph:
    return dcc.Graph(id=id, config=GRAPH_CONFIG, figure=placeholder())


def section(title: str, *children, id: str) -> html.Section:
    return html.Section([html.H3(title), *children], id=id, style=BOX)


#: where the error message goes among an ``on_error`` fallback's outputs
ERROR = object()


def on_error(*fallback: Any) -> Callable[[Callable], Callable]:
    """Decorator of a Dash callback: an exception becomes the ``fallback`` outputs, with the
    page's text for it (``message``) where ``ERROR`` stands and passed to any callable one
    (``on_error(empty_figure)``: a figure that says what went wrong). One output: one value."""

    def fill(text: str) -> Any:
        values = [text if v is ERROR else v(text) if callable(v) else v for v in fallback]
        return values[0] if len(values) == 1 else tuple(values)

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - shown in the page (message logs internals)
                return fill(message(e))

        return guarded

    return decorate


def message(e: Exception) -> str:
    """What the page shows for an error: its text for a user error, else the internal error's
    type and text (the traceback goes to the server log)."""
    if isinstance(e, InterpError):
        return str(e)
    log.exception("dashboard callback failed")
    return f"internal error ({type(e).__name__}): {e}"


# a view of the picked head on the prompt redraws on these; callbacks receive them in this order
# (analyse clicks, layer, head, session key, then prompt and client id): extra inputs of a view
# go between HEAD_VIEW_INPUTS[:4] and HEAD_VIEW_INPUTS[4:]
HEAD_VIEW_INPUTS = (
    Input(ids.ANALYSE_BTN, "n_clicks"),
    Input(ids.LAYER_DD, "value"),
    Input(ids.HEAD_DD, "value"),
    Input(ids.SESSION_KEY, "data"),
    State(ids.PROMPT, "value"),
    State(ids.CLIENT_ID, "data"),
)
