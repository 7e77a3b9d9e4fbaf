"""Section 12: a long document (thousands of tokens) through the selected layer, from the
streaming statistics (``interp.show.long_document``): each head's sink mass, entropy, mean
distance or received attention per position, and the exact map of any window (click a cell).
No n x n pattern is built, so the page's 512-token limit does not apply here."""

from __future__ import annotations

import hashlib
import time

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboards import ids
from dashboards.jobs import HEAVY
from dashboards.state import AppState
from dashboards.style import ERR, ERROR, ROW, graph, on_error, section
from interp.errors import InputError
from interp.show.long_document import MAX_WINDOW, STATISTICS, WINDOW, long_document

MAX_DOC_CHARS = 200_000
MAX_DOC_TOKENS = 8192


def sections() -> list:
    return [
        section(
            "12. Long document: every head along thousands of tokens",
            html.P(
                "Paste a document (up to 8,192 tokens). The selected layer's statistics are "
                "computed while it runs, without the n x n attention matrix; click a cell to "
                "open the exact map of the window around it (the model's own weights)."
            ),
            dcc.Textarea(id=ids.DOC_TEXT, style={"width": "100%", "height": "90px"}),
            html.Div(
                [
                    html.Button("Read the document", id=ids.DOC_BTN),
                    dcc.RadioItems(
                        id=ids.DOC_STAT, options=list(STATISTICS), value="sink mass", inline=True
                    ),
                    _number("head ", ids.DOC_HEAD, 0, 60),
                    _number("window start ", ids.DOC_START, 0, 80),
                    _number("size ", ids.DOC_SIZE, WINDOW, 70, max=MAX_WINDOW, min=1),
                ],
                style=ROW,
            ),  # fmt: skip
            html.Div(id=ids.DOC_STATUS),
            html.Div(id=ids.DOC_ERROR, style=ERR),
            graph(ids.DOC_OVERVIEW),
            graph(ids.DOC_WINDOW),
            id=ids.VIEW_LONG_DOCUMENT,
        )
    ]


def _number(label: str, id: str, value: int, width: int, **limits) -> html.Label:
    """A labelled number input (``limits``: min / max; min 0 unless given)."""
    limits = {"min": 0, **limits}
    return html.Label([label, dcc.Input(id=id, type="number", value=value, **limits,
                                        style={"width": f"{width}px"})])  # fmt: skip


def _check(text: str | None) -> str:
    if not text or not text.strip():
        raise InputError("paste a document first (it is empty)")
    if len(text) > MAX_DOC_CHARS:
        raise InputError(
            f"the document has {len(text):,} characters; this view takes at most "
            f"{MAX_DOC_CHARS:,} (use interp.show.long_document in Python for more)"
        )
    return text


def document(state: AppState, client: str | None, text: str | None, layer) -> tuple:
    """(LongDocument, seconds it took) of ``text`` through ``layer``, cached per session."""
    text = _check(text)
    layer = int(layer if layer is not None else 0)
    key = ("long-document", hashlib.sha1(text.encode()).hexdigest(), layer)

    def compute(s):
        n = len(s.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > MAX_DOC_TOKENS:
            raise InputError(
                f"the document has {n:,} tokens; this view takes at most {MAX_DOC_TOKENS:,}"
            )
        t0 = time.perf_counter()
        doc = long_document(s.model, text, layer)
        return doc, time.perf_counter() - t0

    return state.cached(key, compute, client)


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.DOC_OVERVIEW, "figure"),
        Output(ids.DOC_STATUS, "children"),
        Output(ids.DOC_ERROR, "children"),
        Input(ids.DOC_BTN, "n_clicks"),
        Input(ids.DOC_STAT, "value"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.DOC_HEAD, "value"),
        State(ids.DOC_TEXT, "value"),
        State(ids.CLIENT_ID, "data"),
        prevent_initial_call=True,
        **HEAVY,
    )
    @on_error(no_update, "", ERROR)
    def overview(_, statistic, layer, head, text, client):
        doc, seconds = document(state, client, text, layer)
        fig = doc.figure(statistic or "sink mass", head=_head(doc, head))
        status = (
            f"{len(doc.tokens):,} tokens through layer {doc.layer} in {seconds:.1f} s "
            "(streaming statistics: no n x n matrix)"
        )
        return fig, status, ""

    @app.callback(
        Output(ids.DOC_HEAD, "value"),
        Output(ids.DOC_START, "value"),
        Input(ids.DOC_OVERVIEW, "clickData"),
        State(ids.DOC_SIZE, "value"),
        prevent_initial_call=True,
    )
    def pick(click, size):
        point = (click or {}).get("points", [{}])[0]
        if "pointIndex" not in point and "x" not in point:
            return no_update, no_update
        head = int(str(point["y"]).removeprefix("H"))
        position = int(str(point["x"]).rsplit("@", 1)[-1])
        return head, max(0, position - int(size or WINDOW) // 2)

    @app.callback(
        Output(ids.DOC_WINDOW, "figure"),
        Output(ids.DOC_ERROR, "children", allow_duplicate=True),
        Input(ids.DOC_BTN, "n_clicks"),
        Input(ids.DOC_HEAD, "value"),
        Input(ids.DOC_START, "value"),
        Input(ids.DOC_SIZE, "value"),
        Input(ids.LAYER_DD, "value"),
        State(ids.DOC_TEXT, "value"),
        State(ids.CLIENT_ID, "data"),
        prevent_initial_call=True,
        **HEAVY,
    )
    @on_error(no_update, ERROR)
    def window(_, head, start, size, layer, text, client):
        doc, _ = document(state, client, text, layer)
        start = min(int(start or 0), len(doc.tokens) - 1)
        return doc.window_figure(_head(doc, head), start, int(size or WINDOW)), ""


def _head(doc, head) -> int:
    h = int(head or 0)
    if not 0 <= h < doc.n_heads:
        raise InputError(f"head {h} does not exist: heads 0..{doc.n_heads - 1}")
    return h
