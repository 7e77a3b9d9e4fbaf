"""The page's state in its URL: ``?model=..&run=..&prompt=..&layer=..&head=..``.

Opening such a link (or refreshing) restores the model and run fields, the prompt and the
selected head (once the model is loaded). Every analysis or change of head writes the URL again
(without reloading the page), so the address bar is always a link to this view.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

import dash
from dash import Dash, Input, Output, State, dcc, no_update

from dashboards import ids
from dashboards.analysis import MAX_CHARS


def components() -> list:
    # url-prompt: the prompt a link (or a refresh) put into the prompt box; the views that are
    # not tied to the selected head (ablation, ranking) listen to it, so they never keep a
    # result computed on the page's default prompt before the link's prompt arrived
    return [dcc.Location(id=ids.URL, refresh=False), dcc.Store(id=ids.URL_HEAD),
            dcc.Store(id=ids.URL_PROMPT)]  # fmt: skip


def parse(search: str | None) -> dict[str, str]:
    """The known fields of a URL query string (first value of each; the prompt capped)."""
    args = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}
    out = {k: args[k] for k in ("model", "run", "prompt", "layer", "head") if k in args}
    if "prompt" in out:
        out["prompt"] = out["prompt"][:MAX_CHARS]
    return out


def head_of(args: dict[str, str]) -> dict[str, int] | None:
    try:
        return {"layer": int(args["layer"]), "head": int(args["head"])}
    except (KeyError, ValueError):
        return None


def query(model, run, prompt, layer, head) -> str:
    fields = {"model": model, "run": run, "prompt": prompt, "layer": layer, "head": head}
    return "?" + urlencode({k: v for k, v in fields.items() if v not in (None, "")})


def register(app: Dash) -> None:
    @app.callback(
        Output(ids.PROMPT, "value"),
        Output(ids.MODEL_NAME, "value"),
        Output(ids.RUN_DIR, "value"),
        Output(ids.URL_HEAD, "data"),
        Output(ids.URL_PROMPT, "data"),
        Input(ids.URL, "search"),
        State(ids.PROMPT, "value"),
        State(ids.MODEL_NAME, "value"),
        State(ids.RUN_DIR, "value"),
        State(ids.LAYER_DD, "value"),
        State(ids.HEAD_DD, "value"),
    )
    def restore(search, prompt, model, run, layer, head):
        # dcc.Location sets ``search`` once it is mounted, and again whenever this page writes
        # the URL; a field equal to what the page shows changes nothing (so no callback loop)
        args = parse(search)
        wanted = (args.get("prompt", prompt), args.get("model", model), args.get("run", run))
        current = (prompt, model, run)
        fields = [no_update if w == c else w for w, c in zip(wanted, current, strict=True)]
        pick = head_of(args)
        shown = None if layer is None or head is None else {"layer": layer, "head": head}
        applied = fields[0]  # the link's prompt when it differs from the box, else no_update
        return (*fields, no_update if pick is None or pick == shown else pick, applied)

    @app.callback(
        Output(ids.URL, "search"),
        Input(ids.ANALYSE_BTN, "n_clicks"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
        Input(ids.SESSION_KEY, "data"),
        State(ids.PROMPT, "value"),
        State(ids.MODEL_NAME, "value"),
        State(ids.RUN_DIR, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def write(_, layer, head, key, prompt, model, run, search):
        if key is None or layer is None or head is None:
            return no_update
        new = query(model, run, prompt, layer, head)
        return no_update if new == (search or "") or dash.ctx.triggered_id is None else new
