"""Views of the user's prompt across heads: every head of the selected layer (small multiples),
heads ranked by each detector's score on the prompt, and patching with direct logit attribution.

``sections()`` is their part of the page, ``register(app, state)`` their callbacks.
"""

from __future__ import annotations

import numpy as np
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboards.analysis import first_token
from dashboards.figures import atlas_figure, empty_figure
from dashboards.jobs import HEAVY
from dashboards.prompt_analysis import (
    MAX_PATCH_TOKENS,
    exact_patching,
    patching_view,
    rank_table,
)
from dashboards.prompt_figures import layer_figure, patching_figures, ranked_figure
from dashboards.state import AppState
from dashboards.style import ERR, ERROR, HEAD_VIEW_INPUTS, ROW, graph, on_error, section

RANK_DEFAULT = "induction"
EXACT_DEFAULT = 10  # heads patched exactly per click of "Exact on the top"


def sections() -> list:
    return [
        section(
            "7. All heads of this layer on the prompt",
            html.Div(id="layer-error", style=ERR),
            dcc.Loading(graph("layer-fig")),
            id="view-layer",
        ),
        section(
            "8. Heads ranked on this prompt",
            html.P(
                "Each detector's score computed on the prompt's own tokens (not on the "
                "detector's own inputs, as in the atlas): sink = s_0; previous_token, "
                "duplicate_token, induction = sum(A * D) / sum(A) with D from the prompt; NaN "
                "where the prompt has no such pair (e.g. no repeated token)."
            ),
            dcc.Dropdown(id="rank-score", clearable=False, style={"width": "320px"}),
            html.Div(id="rank-error", style=ERR),
            dcc.Loading(
                html.Div(
                    [graph("rank-atlas"), graph("rank-bars")],
                    style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
                )
            ),
            id="view-rank",
        ),
        section(
            "9. Patching and direct logit attribution",
            html.P(
                "Patching: each head's output (hook_z) taken from the corrupted prompt into the "
                "prompt's run; effect = (m - m_clean) / (m_corrupted - m_clean) of m = "
                "logit(target) - logit(foil) at the last position (1: this head alone carries "
                "the whole difference). 'Run patching' first estimates every head at once by "
                "attribution patching (one forward and one backward pass: seconds); 'Exact' "
                "then runs the real intervention on the heads with the largest estimates, one "
                "forward pass each, with progress below. Direct logit attribution: each head's "
                "write at the last position projected on the same logit difference through the "
                f"final norm (its scale frozen). At most {MAX_PATCH_TOKENS} tokens."
            ),
            html.Div(
                [
                    dcc.Input(
                        id="patch-corrupted",
                        placeholder="corrupted prompt (same token length)",
                        style={"width": "420px"},
                    ),
                    dcc.Input(id="patch-target", placeholder="target (default top-1)"),
                    dcc.Input(id="patch-foil", placeholder="foil (default top-2)"),
                    html.Button("Run patching", id="patch-btn"),
                    html.Button("Exact on the top", id="patch-exact-btn"),
                    dcc.Input(
                        id="patch-exact-n",
                        type="number",
                        value=EXACT_DEFAULT,
                        min=1,
                        style={"width": "60px"},
                    ),
                    html.Span("heads"),
                ],
                style=ROW,
            ),
            html.Div(
                [
                    html.Progress(id="patch-progress", value="0", max="1"),
                    html.Span(id="patch-progress-text"),
                ],
                style=ROW,
            ),  # fmt: skip
            html.Div(id="patch-error", style=ERR),
            html.Div(id="patch-info", style={"margin": "6px 0", "fontFamily": "monospace"}),
            dcc.Loading(
                html.Div(
                    [graph("patch-effect"), graph("patch-dla")],
                    style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
                )
            ),
            id="view-patching",
        ),
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output("layer-fig", "figure"),
        Output("layer-error", "children"),
        *HEAD_VIEW_INPUTS,
    )
    @on_error(empty_figure("no layer view"), ERROR)
    def layer(_, layer, head, _key, prompt, client):
        _, view, layer, head = state.head_view(client, prompt, layer, head)
        return layer_figure(view, layer, head), ""

    @app.callback(
        Output("rank-score", "options"),
        Output("rank-score", "value"),
        Output("rank-atlas", "figure"),
        Output("rank-bars", "figure"),
        Output("rank-error", "children"),
        Input("analyse-btn", "n_clicks"),
        Input("session-key", "data"),
        Input("rank-score", "value"),
        Input("url-prompt", "data"),
        State("prompt", "value"),
        State("client-id", "data"),
    )
    @on_error([], None, empty_figure("no ranking"), empty_figure("no ranking"), ERROR)
    def rank(_, _key, column, _url, prompt, client):
        table = state.cached(("rank", prompt), lambda s: rank_table(s.model, prompt), client)
        columns = [c for c in table.columns if c not in ("layer", "head")]
        if column not in columns:
            column = RANK_DEFAULT if RANK_DEFAULT in columns else columns[0]
        atlas = atlas_figure(table, column, None)
        atlas.update_layout(title=f"{column} on this prompt")
        return columns, column, atlas, ranked_figure(table, column), ""

    @app.callback(
        Output("patch-effect", "figure"),
        Output("patch-dla", "figure"),
        Output("patch-info", "children"),
        Output("patch-error", "children"),
        Input("patch-btn", "n_clicks"),
        Input("patch-exact-btn", "n_clicks"),
        State("prompt", "value"),
        State("patch-corrupted", "value"),
        State("patch-target", "value"),
        State("patch-foil", "value"),
        State("patch-exact-n", "value"),
        State("client-id", "data"),
        prevent_initial_call=True,
        **HEAVY,
    )
    @on_error(empty_figure("no patching result"), empty_figure("no patching result"), "", ERROR)
    def patching(_, _exact, prompt, corrupted, target, foil, n_exact, client):
        model = state.require(client).model
        t_id, f_id = first_token(model, target), first_token(model, foil)
        view = state.cached(
            ("patch", prompt, corrupted, t_id, f_id),
            lambda s: patching_view(s.model, prompt, corrupted, t_id, f_id),
            client,
        )
        if ctx.triggered_id == "patch-exact-btn":
            key = client or ""

            def step(done: int, total: int) -> None:
                state.progress[key] = (done, total, "exact patching")

            try:
                with state.lock:
                    exact_patching(model, view, int(n_exact or EXACT_DEFAULT), step)
            finally:
                state.progress.pop(key, None)

        def decode(i: int) -> str:
            return model.tokenizer.decode([i])

        effect, dla = patching_figures(view, decode)
        info = (
            f"logit({decode(view.target)!r}) - logit({decode(view.foil)!r}): clean "
            f"{view.clean_diff:+.3f}, corrupted {view.corrupted_diff:+.3f}; direct logit "
            f"attribution of all heads {view.dla.sum():+.3f}" + _exact_summary(view)
        )
        return effect, dla, info, ""

    @app.callback(
        Output("patch-progress", "value"),
        Output("patch-progress", "max"),
        Output("patch-progress-text", "children"),
        Input("poll", "n_intervals"),
        State("client-id", "data"),
        State("patch-progress-text", "children"),
    )
    def progress(_, client, shown):
        running = state.progress.get(client or "")
        if running is None:  # an empty bar when nothing runs; nothing sent once it is empty
            return ("0", "1", "") if shown else (no_update, no_update, no_update)
        done, total, what = running
        return str(done), str(max(total, 1)), f"{what}: {done} of {total} heads"


def _exact_summary(view) -> str:
    """'; exact vs estimate on the N checked heads: ...' (the five largest exact effects)."""
    checked = [(la, h) for la, h in view.order() if not np.isnan(view.exact[la, h])]
    if not checked:
        return "; exact: none yet (press 'Exact on the top')"
    top = sorted(checked, key=lambda x: -abs(view.exact[x]))[:5]
    parts = ", ".join(f"L{la}.H{h} {view.exact[la, h]:+.2f} (est {view.estimate[la, h]:+.2f})"
                      for la, h in top)  # fmt: skip
    return f"; exact on {len(checked)} heads, largest: {parts}"
