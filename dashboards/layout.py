"""The fixed parts of the dashboard page: the load bar, the prompt bar and the sections whose
callbacks live in ``dashboards.app`` (atlas and scatter, attention map, geometry, ablation)."""

from __future__ import annotations

from dash import dcc, html

from dashboards import ids
from dashboards.analysis import MAX_CHARS
from dashboards.figures import SCALES
from dashboards.style import ERR, ROW, graph, section
from interp.ablation.heads import KINDS

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"


def load_bar(default_model: str, default_run: str | None) -> html.Div:
    """Model and run fields, Load, the progress bar."""
    label = {"fontWeight": "bold"}
    return html.Div(
        [
            html.Span("model", style=label),
            dcc.Input(id=ids.MODEL_NAME, value=default_model, style={"width": "220px"}),
            html.Span("run folder", style=label),
            dcc.Input(
                id=ids.RUN_DIR,
                value=default_run or "",
                placeholder="(none: compute fast scores)",
                style={"width": "320px"},
            ),
            html.Button("Load", id=ids.LOAD_BTN),
            html.Progress(id=ids.LOAD_PROGRESS, value="0", max="100"),
            html.Span(id=ids.LOAD_STATUS),
        ],
        style=ROW,
    )


def prompt_bar() -> html.Div:
    """The prompt box, Analyse, and the head pickers."""
    label = {"fontWeight": "bold"}
    return html.Div(
        [
            html.Span("prompt", style=label),
            dcc.Textarea(
                id=ids.PROMPT,
                value=DEFAULT_PROMPT,
                maxLength=MAX_CHARS,
                style={"width": "60%", "height": "60px"},
            ),
            html.Button("Analyse", id=ids.ANALYSE_BTN),
            html.Span("head", style=label),
            dcc.Dropdown(id=ids.LAYER_DD, clearable=False, style={"width": "110px"}),
            dcc.Dropdown(id=ids.HEAD_DD, clearable=False, style={"width": "110px"}),
            html.Span(id=ids.HEAD_LABEL, style={"fontWeight": "bold", "color": "#c00"}),
        ],
        style={**ROW, "margin": "10px 0"},
    )


def atlas_and_scatter() -> html.Div:
    """Sections 1 and 2, side by side."""
    return html.Div(
        [
            section(
                "1. Head atlas",
                dcc.Dropdown(id=ids.ATLAS_SCORE, clearable=False),
                graph(ids.ATLAS),
                id=ids.VIEW_ATLAS,
            ),
            section(
                "2. Heads by two scores",
                html.Div(
                    [
                        dcc.Dropdown(id=ids.SCATTER_X, clearable=False, style={"flex": 1}),
                        dcc.Dropdown(id=ids.SCATTER_Y, clearable=False, style={"flex": 1}),
                    ],
                    style=ROW,
                ),
                graph(ids.SCATTER),
                id=ids.VIEW_SCATTER,
            ),
        ],
        style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
    )


def attention_section() -> html.Div:
    """Section 3: the attention map and its display options."""
    return section(
        "3. Attention map",
        html.Div(
            [
                html.Span("color"),
                dcc.RadioItems(
                    id=ids.ATTN_SCALE, options=list(SCALES), value="linear", inline=True
                ),
                dcc.Checklist(
                    id=ids.ATTN_HIDE_FIRST,
                    options=[
                        {
                            "label": "hide the first token (renormalise rows)",
                            "value": "hide",
                        }
                    ],
                    value=[],
                    inline=True,
                ),  # fmt: skip
            ],
            style=ROW,
        ),
        html.Div(id=ids.ATTN_ERROR, style=ERR),
        dcc.Loading(graph(ids.ATTN_MAP)),
        id=ids.VIEW_ATTENTION,
    )


def geometry_section() -> html.Div:
    """Section 5: attention geometry."""
    return section(
        "5. Attention geometry (dot-product vs squared-dot-product scoring)",
        html.Div(id=ids.GEOM_ERROR, style=ERR),
        dcc.Loading(
            html.Div(
                [graph(g) for g in (ids.GEOM_HIST, ids.GEOM_SCATTER, ids.GEOM_PCA)],
                style={"display": "grid", "gridTemplateColumns": "1fr 1fr 1fr"},
            )
        ),
        id=ids.VIEW_GEOMETRY,
    )


def ablation_section() -> html.Div:
    """Section 6: the ablation playground."""
    return section(
        "6. Ablation playground",
        html.Div(
            [
                dcc.Dropdown(
                    id=ids.ABLATE_HEADS,
                    multi=True,
                    placeholder="heads to ablate (L.H)",
                    style={"minWidth": "320px", "flex": 2},
                ),
                dcc.RadioItems(id=ids.ABLATE_KIND, options=list(KINDS), value="zero", inline=True),
                dcc.Input(
                    id=ids.TARGET,
                    placeholder="target token (default top-1)",
                    style={"width": "200px"},
                ),
                dcc.Input(
                    id=ids.FOIL,
                    placeholder="foil token (default top-2)",
                    style={"width": "200px"},
                ),
                dcc.Input(
                    id=ids.CORRUPTED,
                    placeholder="corrupted prompt (resample only)",
                    style={"width": "320px"},
                ),
                html.Button("Run ablation", id=ids.ABLATE_BTN),
            ],
            style=ROW,
        ),
        html.Div(id=ids.ABLATE_ERROR, style=ERR),
        html.Div(id=ids.ABLATE_INFO, style={"margin": "6px 0", "fontFamily": "monospace"}),
        dcc.Loading(graph(ids.ABLATE_FIG)),
        id=ids.VIEW_ABLATION,
    )
