"""Two prompts side by side through the selected head, and their difference when they have
the same number of tokens (e.g. a clean prompt and its corrupted twin)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html

from dashboards import ids
from dashboards.analysis import MAX_CHARS, LayerView
from dashboards.figures import attention_figure, empty_figure
from dashboards.jobs import HEAVY
from dashboards.state import AppState
from dashboards.style import ERR, ERROR, ROW, graph, on_error, section
from interp.defaults import DIVERGING_COLORS


def difference_figure(a: LayerView, b: LayerView, layer: int, head: int) -> go.Figure:
    """A - B of the head's weights, query by query and key by key (same token count only)."""
    n = len(a.tokens)
    if len(b.tokens) != n:
        return empty_figure(
            f"the prompts have {n} and {len(b.tokens)} tokens: a difference needs equal lengths"
        )
    diff = (a.pattern[head] - b.pattern[head]).float().numpy()
    bound = float(np.abs(diff).max()) or 1.0
    labels = [f"{x} / {y}" if x != y else x for x, y in zip(a.tokens, b.tokens, strict=True)]
    fig = go.Figure(
        go.Heatmap(
            z=diff.tolist(), x=list(range(n)), y=list(range(n)), colorscale=DIVERGING_COLORS,
            zmid=0, zmin=-bound, zmax=bound, colorbar=dict(title="A - B"),
            hovertemplate="query %{y}<br>key %{x}<br>A - B %{z:.4f}<extra></extra>",
        )
    )  # fmt: skip
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=labels)
    fig.update_layout(
        title=f"L{layer}.H{head}: attention on A minus on B (red: more on A, blue: more on B)",
        xaxis=dict(title="key", tickangle=-60, **ticks),
        yaxis=dict(title="query", autorange="reversed", **ticks),
        height=max(420, min(1300, 14 * n + 160)),
        margin=dict(l=90, r=20, t=50, b=90),
    )
    return fig


def sections() -> list:
    return [
        section(
            "10. Compare two prompts",
            html.Div(
                [
                    html.Span("B:"),
                    dcc.Textarea(
                        id=ids.COMPARE_PROMPT,
                        maxLength=MAX_CHARS,
                        placeholder="a second prompt (A is the prompt above)",
                        style={"width": "60%", "height": "40px"},
                    ),  # fmt: skip
                    html.Button("Compare", id=ids.COMPARE_BTN),
                ],
                style=ROW,
            ),
            html.Div(id=ids.COMPARE_ERROR, style=ERR),
            dcc.Loading(
                html.Div(
                    [graph(ids.COMPARE_A), graph(ids.COMPARE_B)],
                    style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
                )
            ),
            graph(ids.COMPARE_DIFF),
            id=ids.VIEW_COMPARE,
        )
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.COMPARE_A, "figure"),
        Output(ids.COMPARE_B, "figure"),
        Output(ids.COMPARE_DIFF, "figure"),
        Output(ids.COMPARE_ERROR, "children"),
        Input(ids.COMPARE_BTN, "n_clicks"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
        State(ids.PROMPT, "value"),
        State(ids.COMPARE_PROMPT, "value"),
        State(ids.CLIENT_ID, "data"),
        prevent_initial_call=True,
        **HEAVY,
    )
    @on_error(*[empty_figure("type a second prompt and press Compare")] * 3, ERROR)
    def compare(_, layer, head, prompt, other, client):
        if not other:
            blank = empty_figure("type a second prompt and press Compare")
            return blank, blank, blank, ""
        session, layer, head = state.selected_head(client, layer, head)
        views = [state.layer_view(client, p, layer) for p in (prompt, other)]
        figs = [
            attention_figure(v, layer, head, session.causal).update_layout(
                title=f"{name}: L{layer}.H{head}, {len(v.tokens)} tokens"
            )
            for name, v in zip("AB", views, strict=True)
        ]
        return figs[0], figs[1], difference_figure(views[0], views[1], layer, head), ""
