"""Export of what the page shows: the per-head score table (CSV), the selected head's attention
on the prompt with its tokens (JSON), the heads ranked on the prompt (CSV). Every figure's
camera button saves it as SVG (``style.graph``)."""

from __future__ import annotations

import json

import dash
from dash import Dash, Input, Output, State, dcc, html

from dashboards import ids
from dashboards.analysis import check_head
from dashboards.prompt_analysis import rank_table
from dashboards.state import AppState
from dashboards.style import ERR, ERROR, ROW, on_error


def components() -> list:
    return [
        html.Div(
            [
                html.Span("export:"),
                html.Button("head scores (CSV)", id=ids.EXPORT_SCORES),
                html.Button("this head's attention (JSON)", id=ids.EXPORT_ATTENTION),
                html.Button("heads ranked on the prompt (CSV)", id=ids.EXPORT_RANK),
                html.Span("figures: the camera button of each plot saves an SVG"),
                html.Span(id=ids.EXPORT_ERROR, style=ERR),
                dcc.Download(id=ids.DOWNLOAD),
            ],
            style=ROW,
        )
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        Output(ids.EXPORT_ERROR, "children"),
        Input(ids.EXPORT_SCORES, "n_clicks"),
        Input(ids.EXPORT_ATTENTION, "n_clicks"),
        Input(ids.EXPORT_RANK, "n_clicks"),
        State(ids.PROMPT, "value"),
        State(ids.LAYER_DD, "value"),
        State(ids.HEAD_DD, "value"),
        State(ids.CLIENT_ID, "data"),
        prevent_initial_call=True,
    )
    @on_error(dash.no_update, ERROR)
    def export(_a, _b, _c, prompt, layer, head, client):
        return payload(state, client, dash.ctx.triggered_id, prompt, layer, head), ""


def payload(state: AppState, client: str | None, which: str, prompt, layer, head) -> dict:
    """What ``dcc.Download`` sends for export button ``which`` (content and file name)."""
    session = state.require(client)
    if which == ids.EXPORT_SCORES:
        name = f"{session.name.replace('/', '_')}_head_scores.csv"
        return dcc.send_data_frame(session.scores.to_csv, name, index=False)
    if which == ids.EXPORT_RANK:
        table = state.cached(("rank", prompt), lambda s: rank_table(s.model, prompt), client)
        return dcc.send_data_frame(table.to_csv, "heads_on_prompt.csv", index=False)
    layer, head = check_head(session.model, layer, head)
    view = state.layer_view(client, prompt, layer)
    data = {
        "model": session.name, "layer": layer, "head": head, "prompt": prompt,
        "tokens": view.tokens, "pattern": view.pattern[head].float().tolist(),
    }  # fmt: skip
    return dict(content=json.dumps(data), filename=f"L{layer}.H{head}_attention.json")
