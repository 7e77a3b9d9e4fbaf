"""Views of the user's prompt across heads: every head of the selected layer (small multiples),
heads ranked by each detector's score on the prompt, and patching with direct logit attribution.

``sections()`` is their part of the page, ``register(app, state)`` their callbacks.
"""

from __future__ import annotations

import numpy as np
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboards import ids
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
            html.Div(id=ids.LAYER_ERROR, style=ERR),
            dcc.Loading(graph(ids.LAYER_FIG)),
            id=ids.VIEW_LAYER,
        ),
        section(
            "8. Heads ranked on this prompt",
            html.P(
                "Each detector's score computed on the prompt's own tokens (not on the "
                "detector's own inputs, as in the atlas): sink = s_0; previous_token, "
                "duplicate_token, induction = sum(A * D) / sum(A) with D from the prompt; NaN "
                "where the prompt has no such pair (e.g. no repeated token)."
            ),
            dcc.Dropdown(id=ids.RANK_SCORE, clearable=False, style={"width": "320px"}),
            html.Div(id=ids.RANK_ERROR, style=ERR),
            dcc.Loading(
                html.Div(
                    [graph(ids.RANK_ATLAS), graph(ids.RANK_BARS)],
                    style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
                )
            ),
            id=ids.VIEW_RANK,
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
                        id=ids.PATCH_CORRUPTED,
                        placeholder="corrupted prompt (same token length)",
                        style={"width": "420px"},
                    ),
                    dcc.Input(id=ids.PATCH_TARGET, placeholder="target (default top-1)"),
                    dcc.Input(id=ids.PATCH_FOIL, placeholder="foil (default top-2)"),
                    html.Button("Run patching", id=ids.PATCH_BTN),
                    html.Button("Exact on the top", id=ids.PATCH_EXACT_BTN),
                    dcc.Input(
                        id=ids.PATCH_EXACT_N,
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
                    html.Progress(id=ids.PATCH_PROGRESS, value="0", max="1"),
                    html.Span(id=ids.PATCH_PROGRESS_TEXT),
                ],
                style=ROW,
            ),  # fmt: skip
            html.Div(id=ids.PATCH_ERROR, style=ERR),
            html.Div(id=ids.PATCH_INFO, style={"margin": "6px 0", "fontFamily": "monospace"}),
            dcc.Loading(
                html.Div(
                    [graph(ids.PATCH_EFFECT), graph(ids.PATCH_DLA)],
                    style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
                )
            ),
            id=ids.VIEW_PATCHING,
        ),
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.LAYER_FIG, "figure"),
        Output(ids.LAYER_ERROR, "children"),
        *HEAD_VIEW_INPUTS,
    )
    @on_error(empty_figure("no layer view"), ERROR)
    def layer(_, layer, head, _key, prompt, client):
        _, view, layer, head = state.head_view(client, prompt, layer, head)
        return layer_figure(view, layer, head), ""

    @app.callback(
        Output(ids.RANK_SCORE, "options"),
        Output(ids.RANK_SCORE, "value"),
        Output(ids.RANK_ATLAS, "figure"),
        Output(ids.RANK_BARS, "figure"),
        Output(ids.RANK_ERROR, "children"),
        Input(ids.ANALYSE_BTN, "n_clicks"),
        Input(ids.SESSION_KEY, "data"),
        Input(ids.RANK_SCORE, "value"),
        Input(ids.URL_PROMPT, "data"),
        State(ids.PROMPT, "value"),
        State(ids.CLIENT_ID, "data"),
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
        Output(ids.PATCH_EFFECT, "figure"),
        Output(ids.PATCH_DLA, "figure"),
        Output(ids.PATCH_INFO, "children"),
        Output(ids.PATCH_ERROR, "children"),
        Input(ids.PATCH_BTN, "n_clicks"),
        Input(ids.PATCH_EXACT_BTN, "n_clicks"),
        State(ids.PROMPT, "value"),
        State(ids.PATCH_CORRUPTED, "value"),
        State(ids.PATCH_TARGET, "value"),
        State(ids.PATCH_FOIL, "value"),
        State(ids.PATCH_EXACT_N, "value"),
        State(ids.CLIENT_ID, "data"),
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
        if ctx.triggered_id == ids.PATCH_EXACT_BTN:
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
        Output(ids.PATCH_PROGRESS, "value"),
        Output(ids.PATCH_PROGRESS, "max"),
        Output(ids.PATCH_PROGRESS_TEXT, "children"),
        Input(ids.POLL, "n_intervals"),
        State(ids.CLIENT_ID, "data"),
        State(ids.PATCH_PROGRESS_TEXT, "children"),
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
