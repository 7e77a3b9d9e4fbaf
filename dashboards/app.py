"""The Dash app: head atlas, attention map, attention geometry, head scatter, ablation playground,
and the per-prompt views of ``dashboards.prompt_views`` (a layer's heads, heads ranked on the
prompt, patching with direct logit attribution).

``create_app(state)`` builds the app around an ``AppState``; ``dashboards.serve`` runs it. Every
callback turns errors into a message in the page (``_guard``); the server never shows a traceback.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import dash
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboards import (
    compare_view,
    export,
    head_card,
    ids,
    long_document_view,
    page_help,
    prompt_views,
    token_view,
    url_state,
)
from dashboards.analysis import (
    ablation_view,
    first_token,
    parse_heads,
    unknown_warning,
)
from dashboards.figures import (
    ablation_figure,
    atlas_figure,
    attention_figure,
    empty_figure,
    geometry_figures,
    scatter_figure,
)
from dashboards.layout import (
    ablation_section,
    atlas_and_scatter,
    attention_section,
    geometry_section,
    load_bar,
    prompt_bar,
)
from dashboards.state import AppState, Session
from dashboards.style import ERR, ERROR, HEAD_VIEW_INPUTS, on_error
from dashboards.tables import score_columns
from interp.ablation.heads import head_means
from interp.errors import InterpError
from interp.inputs.prompts import load_prompts
from interp.known_models import DEFAULT_MODEL
from interp.models.meta import model_meta

MAX_REQUEST_BYTES = 1 << 20


def _selected(layer, head) -> tuple[int, int] | None:
    """The head picked in the drop-downs, or None before both are set."""
    return None if layer is None or head is None else (int(layer), int(head))


def _layout(default_model: str, default_run: str | None) -> html.Div:
    return html.Div(
        [
            html.H2("interp: attention heads explorer"),
            *url_state.components(),
            *page_help.components(),
            load_bar(default_model, default_run),
            html.Div(id=ids.LOAD_ERROR, style=ERR),
            *export.components(),
            dcc.Interval(id=ids.POLL, interval=500),
            dcc.Store(id=ids.SESSION_KEY),
            dcc.Store(id=ids.CLIENT_ID, data=uuid.uuid4().hex),  # this page's own sessions
            prompt_bar(),
            atlas_and_scatter(),
            attention_section(),
            *token_view.sections(),
            geometry_section(),
            ablation_section(),
            *prompt_views.sections(),
            *compare_view.sections(),
            *head_card.sections(),
            *long_document_view.sections(),
        ],
        style={"fontFamily": "sans-serif", "margin": "0 16px"},
    )


def create_app(
    state: AppState,
    default_model: str = DEFAULT_MODEL,
    default_run: str | None = None,
    allowed_hosts: set[str] | None = None,
) -> Dash:
    """The Dash app over ``state`` (load a model with ``state.load`` or the page's Load button).
    Each view registers its own callbacks (``_register_*``). ``allowed_hosts``: the host names a
    request's ``Host`` header may carry (a loopback server accepts only loopback names, so a web
    page cannot reach it through a DNS name rebound to 127.0.0.1); None accepts any."""
    app = Dash(__name__, title="interp dashboard", update_title=None)
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    if allowed_hosts is not None:
        from flask import request

        @app.server.before_request
        def check_host():
            if urlsplit(f"//{request.host}").hostname not in allowed_hosts:
                return {"error": f"host {request.host!r} is not served here"}, 421

    # a function: every page load gets its own client id (its own loaded model)
    app.layout = lambda: _layout(default_model, default_run)
    for register in (
        _register_loading,
        _register_selection,
        _register_atlas_and_scatter,
        _register_attention_views,
        _register_ablation,
        token_view.register,
        prompt_views.register,
        compare_view.register,
        head_card.register,
        long_document_view.register,
        export.register,
        lambda app, state: url_state.register(app),
        _register_api,
    ):
        register(app, state)
    return app


def _session_key(session: Session | None) -> str | None:
    return None if session is None else f"{session.name}|{session.run_dir}|{id(session)}"


def _register_loading(app: Dash, state: AppState) -> None:
    """The Load button and the loader's progress (polled)."""

    @app.callback(
        Output(ids.LOAD_STATUS, "children", allow_duplicate=True),
        Input(ids.LOAD_BTN, "n_clicks"),
        State(ids.MODEL_NAME, "value"),
        State(ids.RUN_DIR, "value"),
        State(ids.CLIENT_ID, "data"),
        prevent_initial_call=True,
    )
    def start_load(_, model, run_dir, client):
        if not model or not str(model).strip():
            return "type a model name first"
        started = state.load_async(str(model).strip(), (run_dir or "").strip() or None, client)
        return "loading ..." if started else "a load is already running"

    @app.callback(
        Output(ids.LOAD_PROGRESS, "value"),
        Output(ids.LOAD_STATUS, "children"),
        Output(ids.LOAD_ERROR, "children"),
        Output(ids.SESSION_KEY, "data"),
        Input(ids.POLL, "n_intervals"),
        State(ids.SESSION_KEY, "data"),
        State(ids.CLIENT_ID, "data"),
    )
    def poll(_, current, client):
        status = state.status(client)
        key = _session_key(state.session_for(client))
        pct = str(int(100 * status.fraction))
        text = status.stage + (
            f" ({status.seconds:.1f} s)" if status.stage.startswith("ready") else ""
        )
        return pct, text, status.error or "", key if key != current else no_update


def _register_selection(app: Dash, state: AppState) -> None:
    """Score and head pickers, filled when a session is ready; clicks select a head."""

    @app.callback(
        Output(ids.ATLAS_SCORE, "options"),
        Output(ids.ATLAS_SCORE, "value"),
        Output(ids.SCATTER_X, "options"),
        Output(ids.SCATTER_X, "value"),
        Output(ids.SCATTER_Y, "options"),
        Output(ids.SCATTER_Y, "value"),
        Output(ids.LAYER_DD, "options"),
        Output(ids.LAYER_DD, "value"),
        Output(ids.HEAD_DD, "options"),
        Output(ids.HEAD_DD, "value"),
        Output(ids.ABLATE_HEADS, "options"),
        Input(ids.SESSION_KEY, "data"),
        Input(ids.URL_HEAD, "data"),  # a link's head may arrive after the session
        State(ids.CLIENT_ID, "data"),
    )
    def on_session(key, url_head, client):
        session = state.session_for(client)
        if key is None or session is None:
            return ([], None) * 5 + ([],)
        cols = score_columns(session.scores)
        x = next((c for c in cols if c.endswith(":mean_fai")), cols[0])
        y = "anchor:span" if "anchor:span" in cols else cols[min(1, len(cols) - 1)]
        layers = [{"label": f"layer {i}", "value": i} for i in range(session.n_layers)]
        heads = [{"label": f"head {i}", "value": i} for i in range(session.n_heads)]
        all_heads = [
            f"L{la}.H{h}" for la in range(session.n_layers) for h in range(session.n_heads)
        ]
        layer, head = 0, 0  # or the head a link or a refresh asks for
        if url_head and 0 <= url_head["layer"] < session.n_layers:
            layer = url_head["layer"]
            head = url_head["head"] if 0 <= url_head["head"] < session.n_heads else 0
        return cols, cols[0], cols, x, cols, y, layers, layer, heads, head, all_heads

    @app.callback(
        Output(ids.LAYER_DD, "value", allow_duplicate=True),
        Output(ids.HEAD_DD, "value", allow_duplicate=True),
        Input(ids.ATLAS, "clickData"),
        Input(ids.SCATTER, "clickData"),
        prevent_initial_call=True,
    )
    def pick_head(atlas_click, scatter_click):
        # Dash passes a heatmap click without customdata: the atlas cell is (x=head, y=layer);
        # a scatter point carries [layer, head] as customdata.
        try:
            if dash.ctx.triggered_id == ids.ATLAS:
                point = atlas_click["points"][0]
                return int(point["y"]), int(point["x"])
            layer, head = scatter_click["points"][0]["customdata"][:2]
            return int(layer), int(head)
        except (TypeError, KeyError, IndexError, ValueError):
            return no_update, no_update

    @app.callback(
        Output(ids.HEAD_LABEL, "children"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
    )
    def head_label(layer, head):
        return "" if layer is None or head is None else f"L{layer}.H{head}"


def _register_atlas_and_scatter(app: Dash, state: AppState) -> None:
    """The head atlas (layer x head grid) and the score scatter."""

    @app.callback(
        Output(ids.ATLAS, "figure"),
        Input(ids.ATLAS_SCORE, "value"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
        Input(ids.SESSION_KEY, "data"),
        State(ids.CLIENT_ID, "data"),
    )
    @on_error(empty_figure)
    def atlas(column, layer, head, _key, client):
        session = state.require(client)
        if column not in session.scores:
            return empty_figure("pick a score")
        selected = _selected(layer, head)
        return atlas_figure(session.scores, column, selected)

    @app.callback(
        Output(ids.SCATTER, "figure"),
        Input(ids.SCATTER_X, "value"),
        Input(ids.SCATTER_Y, "value"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
        Input(ids.SESSION_KEY, "data"),
        State(ids.CLIENT_ID, "data"),
    )
    @on_error(empty_figure)
    def scatter(x, y, layer, head, _key, client):
        session = state.require(client)
        if x not in session.scores or y not in session.scores:
            return empty_figure("pick two scores")
        selected = _selected(layer, head)
        return scatter_figure(session.scores, x, y, selected)


def _register_attention_views(app: Dash, state: AppState) -> None:
    """The attention map and the geometry views of one head on the prompt."""

    @app.callback(
        Output(ids.ATTN_MAP, "figure"),
        Output(ids.ATTN_ERROR, "children"),
        *HEAD_VIEW_INPUTS[:4],
        Input(ids.ATTN_SCALE, "value"),
        Input(ids.ATTN_HIDE_FIRST, "value"),
        *HEAD_VIEW_INPUTS[4:],
    )
    @on_error(empty_figure("no attention map"), ERROR)
    def attention(_, layer, head, _key, scale, hide, prompt, client):
        session, view, layer, head = state.head_view(client, prompt, layer, head)
        fig = attention_figure(
            view, layer, head, session.causal, scale=scale or "linear", hide_first=bool(hide)
        )
        return fig, unknown_warning(session.model.tokenizer, view.ids)

    @app.callback(
        Output(ids.GEOM_HIST, "figure"),
        Output(ids.GEOM_SCATTER, "figure"),
        Output(ids.GEOM_PCA, "figure"),
        Output(ids.GEOM_ERROR, "children"),
        *HEAD_VIEW_INPUTS,
    )
    @on_error(
        empty_figure("no geometry"), empty_figure("no geometry"), empty_figure("no geometry"), ERROR
    )
    def geometry(_, layer, head, _key, prompt, client):
        session, view, layer, head = state.head_view(client, prompt, layer, head)
        scoring = model_meta(session.model).attention
        figs = geometry_figures(view, layer, head, session.causal, scoring=scoring)
        return (*figs, "")


def _register_ablation(app: Dash, state: AppState) -> None:
    """The ablation playground."""

    @app.callback(
        Output(ids.ABLATE_FIG, "figure"),
        Output(ids.ABLATE_INFO, "children"),
        Output(ids.ABLATE_ERROR, "children"),
        Input(ids.ABLATE_BTN, "n_clicks"),
        Input(ids.ANALYSE_BTN, "n_clicks"),
        Input(ids.SESSION_KEY, "data"),
        Input(ids.URL_PROMPT, "data"),
        State(ids.PROMPT, "value"),
        State(ids.ABLATE_HEADS, "value"),
        State(ids.ABLATE_KIND, "value"),
        State(ids.CORRUPTED, "value"),
        State(ids.TARGET, "value"),
        State(ids.FOIL, "value"),
        State(ids.CLIENT_ID, "data"),
    )
    @on_error(empty_figure("no ablation result"), "", ERROR)
    def ablation(_a, _b, _key, _url, prompt, heads, kind, corrupted, target, foil, client):
        session = state.require(client)
        if not session.causal:
            raise InterpError("the ablation playground needs a causal language model")
        model = session.model
        chosen = parse_heads(model, heads)
        means = None
        if kind == "mean" and chosen:
            means = state.cached(("means",), _all_means, client)
        key = ("ablate", prompt, tuple(chosen), kind, corrupted if kind == "resample" else None)
        view = state.cached(
            key,
            lambda s: ablation_view(
                s.model, prompt, chosen, kind, means=means, corrupted=corrupted
            ),
            client,
        )
        t_id = first_token(model, target)
        f_id = first_token(model, foil)
        top2 = view.logits_clean.topk(2).indices.tolist()
        t_id = top2[0] if t_id is None else t_id
        f_id = top2[1] if f_id is None else f_id

        def decode(i: int) -> str:
            return model.tokenizer.decode([i])

        diff_c = float(view.logits_clean[t_id] - view.logits_clean[f_id])
        diff_a = float(view.logits_ablated[t_id] - view.logits_ablated[f_id])
        p_c = view.tokens_clean.exp()
        kl = float((p_c * (view.tokens_clean - view.tokens_ablated)).sum())
        names = ", ".join(heads or []) or "none"
        info = (
            f"logit({decode(t_id)!r}) - logit({decode(f_id)!r}): clean {diff_c:+.3f}, "
            f"ablated {diff_a:+.3f} (change {diff_a - diff_c:+.3f}); "
            f"KL(clean || ablated) = {kl:.4f} nats; ablated ({kind}): {names}"
        )
        fig = ablation_figure(
            view, decode, title=f"next token after the prompt ({len(chosen)} heads {kind})"
        )
        return fig, info, ""

    def _all_means(s: Session) -> dict:
        heads = [(la, h) for la in range(s.n_layers) for h in range(s.n_heads)]
        return head_means(s.model, load_prompts(), heads)


def _register_api(app: Dash, state: AppState) -> None:
    """JSON status endpoint and the request-size error."""

    @app.server.route("/api/status")
    def api_status():
        """Loader state as JSON (for scripts and load tests): stage, busy, error, model; of the
        page whose client id is given as ``?client=``, else of the server's own session."""
        from flask import request

        client = request.args.get("client") or None
        status = state.status(client)
        session = state.session_for(client)
        return {
            "stage": status.stage,
            "busy": status.busy,
            "error": status.error,
            "model": None if session is None else session.name,
            "run_dir": None if session is None else session.run_dir,
        }

    @app.server.errorhandler(413)
    def too_large(_):
        return {"error": f"request larger than {MAX_REQUEST_BYTES} bytes"}, 413


__all__ = ["create_app"]
