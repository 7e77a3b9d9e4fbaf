"""The head card: everything known about the selected head in one place.

Every detector's score, the threshold it was labelled with and the label; the head statistics;
its hidden sinks (keys j >= 1 with s_j > 0.1 on the sink detector's text samples, with their
tokens); and the keys it attends to most there (largest s_j, the mean attention a key receives
from the queries that see it), each with the tokens around it. Read from the run folder's
tables (``interp scan``) or from the fast detectors the dashboard computed.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, html

from dashboards import ids
from dashboards.analysis import display_token
from dashboards.state import AppState, Session
from dashboards.style import ERR, ERROR, on_error, section
from interp.defaults import HIDDEN_SINK_MIN_QUERIES
from interp.heads import REGISTRY

N_EXAMPLES = 8
CONTEXT = 6  # tokens shown before each key
DETECTOR_COLUMNS = ["detector", "kind", "score", "exact", "threshold", "label"]


def detector_rows(session: Session, layer: int, head: int) -> pd.DataFrame:
    """One row per detector: score, threshold, label (the detector's own table); ``kind``:
    "causal" for the causal role scores (``interp.heads.causal``: estimated loss increase,
    with the exact intervention's in ``exact`` where it was checked), else "attention"."""
    rows = []
    for name, result in session.results.items():
        t = result.table
        row = t[(t.layer == layer) & (t["head"] == head)]
        if row.empty:
            continue
        r = row.iloc[0]
        causal = name in REGISTRY and REGISTRY[name].interventional
        rows.append(
            {"detector": name, "kind": "causal" if causal else "attention",
             "score": float(r.score),
             "exact": float(r.exact) if "exact" in t.columns else float("nan"),
             "threshold": float(r.threshold), "label": bool(r.label)}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=DETECTOR_COLUMNS)


def statistic_rows(session: Session, layer: int, head: int) -> pd.DataFrame:
    """Every other numeric column of the merged per-head table for this head."""
    s = session.scores
    row = s[(s.layer == layer) & (s["head"] == head)]
    if row.empty:
        return pd.DataFrame(columns=["measure", "value"])
    values = row.drop(columns=["layer", "head"]).iloc[0]
    skip = set(session.results)  # already in the detector rows
    return pd.DataFrame(
        [{"measure": k, "value": float(v)} for k, v in values.items() if k not in skip]
    )


def _context(keys: pd.DataFrame, window: int, position: int) -> str:
    """The tokens of ``window`` up to and including ``position`` (the last ``CONTEXT``)."""
    w = keys[keys.window == window].drop_duplicates("position").set_index("position").token
    start = max(0, position - CONTEXT)
    shown = [display_token(str(w.get(p, "?"))) for p in range(start, position + 1)]
    return ("..." if start else "") + "".join(shown[:-1]) + f"[{shown[-1]}]"


def sink_examples(session: Session, layer: int, head: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(hidden sinks, most-attended keys) of this head on the sink detector's samples, best
    first, each with the tokens before the key."""
    sink = session.results.get("sink")
    if sink is None:
        return pd.DataFrame(), pd.DataFrame()
    keys = sink.extra.get("key_scores")
    mine = keys[(keys.layer == layer) & (keys["head"] == head)] if keys is not None else None

    def with_context(df: pd.DataFrame) -> pd.DataFrame:
        df = df.nlargest(N_EXAMPLES, "sink_score").copy()
        if mine is not None:
            where = zip(df.window, df.position, strict=True)
            df["context"] = [_context(mine, w, p) for w, p in where]
        return df

    hidden = sink.extra.get("hidden_sinks")
    hidden = (
        hidden[(hidden.layer == layer) & (hidden["head"] == head)] if hidden is not None else None
    )
    if hidden is not None:  # end-of-window keys seen by a few queries are not sinks
        hidden = hidden[hidden.n_queries >= HIDDEN_SINK_MIN_QUERIES]
    hidden = with_context(hidden) if hidden is not None and len(hidden) else pd.DataFrame()
    top = pd.DataFrame()
    if mine is not None:
        rest = mine[mine.position > 0]
        if "n_queries" in rest:
            rest = rest[rest.n_queries >= HIDDEN_SINK_MIN_QUERIES]
        if len(hidden):  # each key is listed once: not again among the most-attended keys
            listed = set(zip(hidden.window, hidden.position, strict=True))
            keep = [(w, p) not in listed for w, p in zip(rest.window, rest.position, strict=True)]
            rest = rest[keep]
        top = with_context(rest)
    return hidden, top


def _table(df: pd.DataFrame, columns: list[str], id: str) -> html.Table:
    def cell(v):
        if isinstance(v, float):
            return "" if v != v else f"{v:.4f}"  # NaN: not measured
        return str(v)

    pad = {"padding": "2px 10px", "textAlign": "left"}
    head = html.Tr([html.Th(c, style=pad) for c in columns])
    body = [html.Tr([html.Td(cell(r[c]), style=pad) for c in columns]) for _, r in df.iterrows()]
    return html.Table([head, *body], id=id, style={"borderCollapse": "collapse"})


def card(session: Session, layer: int, head: int) -> list:
    detectors = detector_rows(session, layer, head).sort_values("kind", kind="stable")
    stats = statistic_rows(session, layer, head)
    hidden, top = sink_examples(session, layer, head)
    labels = ", ".join(detectors[detectors.label].detector) or "none"
    out = [
        html.H4(f"L{layer}.H{head}: labelled {labels}"),
        _table(detectors, DETECTOR_COLUMNS, "card-detectors"),
        html.Details([html.Summary("all measures"),
                      _table(stats, ["measure", "value"], "card-stats")]),
    ]  # fmt: skip
    cols = ["token", "sink_score", "window", "position", "context"]
    if len(hidden):
        out += [
            html.H5(
                f"hidden sinks (s_j > 0.1, j >= 1, seen by >= {HIDDEN_SINK_MIN_QUERIES} "
                "queries: the last keys of a window reach 0.1 by chance)"
            ),
            _table(hidden, [*cols, "n_queries"], "card-sinks"),
        ]
    else:
        out.append(
            html.P(
                f"no hidden sinks (s_j > 0.1 at j >= 1, seen by >= {HIDDEN_SINK_MIN_QUERIES} "
                "queries) on the sink samples"
            )
        )
    if len(top):
        out += [
            html.H5(
                "other keys it attends to most on the sink detector's samples (s_j, j >= 1, "
                f"seen by >= {HIDDEN_SINK_MIN_QUERIES} queries)"
            ),
            _table(top, cols, "card-examples"),
        ]
    return out


def sections() -> list:
    return [
        section(
            "11. Head card",
            html.Div(id=ids.CARD_ERROR, style=ERR),
            html.Div(id=ids.HEAD_CARD),
            id=ids.VIEW_CARD,
        )
    ]


def register(app: Dash, state: AppState) -> None:
    @app.callback(
        Output(ids.HEAD_CARD, "children"),
        Output(ids.CARD_ERROR, "children"),
        Input(ids.LAYER_DD, "value"),
        Input(ids.HEAD_DD, "value"),
        Input(ids.SESSION_KEY, "data"),
        State(ids.CLIENT_ID, "data"),
    )
    @on_error([], ERROR)
    def head_card(layer, head, _key, client):
        session, layer, head = state.selected_head(client, layer, head)
        return card(session, layer, head), ""
