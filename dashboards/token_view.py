"""The prompt as text, colored by the selected head's attention (CircuitsVis-style).

Click a token to select it; the other tokens are shaded by how much the selected token attends
to them ("attends to": its row of the pattern) or how much they attend to it ("attended by":
its column). Hovering any token shows, without a click, the three keys it attends to most and
the three queries that attend to it most. Readable at any prompt length the page accepts.
"""

from __future__ import annotations

import dash
import torch
from dash import ALL, Dash, Input, Output, dcc, html

from dashboards import ids
from dashboards.state import AppState
from dashboards.style import ERR, ERROR, HEAD_VIEW_INPUTS, ROW, on_error, section

MODES = ("attends to", "attended by")
TOP_HOVER = 3


def shades(pattern: torch.Tensor, selected: int, mode: str) -> list[float]:
    """The weight each token gets in the view: row ``selected`` of the [query, key] pattern
    ("attends to") or its column ("attended by")."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    values = pattern[selected] if mode == "attends to" else pattern[:, selected]
    return values.float().tolist()


def hover_text(pattern: torch.Tensor, tokens: list[str], i: int) -> str:
    def top(values: torch.Tensor) -> str:
        k = min(TOP_HOVER, values.numel())
        w, idx = values.topk(k)
        return ", ".join(
            f"{tokens[j]}@{j} {float(v):.2f}" for v, j in zip(w, idx.tolist(), strict=True) if v > 0
        )

    return f"{tokens[i]}@{i}\nattends to: {top(pattern[i])}\nattended by: {top(pattern[:, i])}"


def token_spans(pattern: torch.Tensor, tokens: list[str], selected: int, mode: str) -> list:
    values = shades(pattern, selected, mode)
    top = max(values) or 1.0
    spans = []
    for i, tok in enumerate(tokens):
        alpha = values[i] / top
        style = {
            "backgroundColor": f"rgba(31, 119, 180, {alpha:.3f})",
            "color": "white" if alpha > 0.6 else "black",
            "padding": "2px 1px",
            "margin": "1px",
            "cursor": "pointer",
            "whiteSpace": "pre",
            "border": "2px solid #c00" if i == selected else "2px solid transparent",
            "display": "inline-block",
        }
        spans.append(
            html.Span(
                tok,
                id={"type": ids.TOK, "index": i},
                title=hover_text(pattern, tokens, i),
                style=style,
                **{"data-weight": f"{values[i]:.6f}"},
            )
        )
    return spans


def sections() -> list:
    return [
        section(
            "4. The prompt as text, shaded by the head's attention",
            html.Div(
                [
                    dcc.RadioItems(
                        id=ids.TOK_MODE, options=list(MODES), value=MODES[0], inline=True
                    ),
                    html.Span("click a token to select it; hover any token for its top links"),
                ],
                style=ROW,
            ),
            dcc.Store(id=ids.TOK_SELECTED),
            html.Div(id=ids.TOK_ERROR, style=ERR),
            html.Div(id=ids.TOK_TEXT, style={"lineHeight": "2em", "fontFamily": "monospace"}),
            id=ids.VIEW_TOKENS,
        )
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.TOK_SELECTED, "data"),
        Input({"type": ids.TOK, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def pick(clicks):
        trigger = dash.ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks or []):
            return dash.no_update
        return int(trigger["index"])

    @app.callback(
        Output(ids.TOK_TEXT, "children"),
        Output(ids.TOK_ERROR, "children"),
        *HEAD_VIEW_INPUTS[:4],
        Input(ids.TOK_SELECTED, "data"),
        Input(ids.TOK_MODE, "value"),
        *HEAD_VIEW_INPUTS[4:],
    )
    @on_error([], ERROR)
    def text(_, layer, head, _key, selected, mode, prompt, client):
        _, view, layer, head = state.head_view(client, prompt, layer, head)
        n = len(view.tokens)
        chosen = n - 1 if selected is None or not 0 <= int(selected) < n else int(selected)
        return token_spans(view.pattern[head], view.tokens, chosen, mode or MODES[0]), ""
