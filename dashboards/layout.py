"""The fixed parts of the dashboard page: the load bar, the prompt bar and the sections whose
callbacks live in ``dashboards.app`` (atlas and scatter, attention map, geometry, ablation)."""

from __future__ import annotations

from dash import dcc, html

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
            dcc.Input(id="model-name", value=default_model, style={"width": "220px"}),
            html.Span("run folder", style=label),
            dcc.Input(
                id="run-dir",
                value=default_run or "",
                placeholder="(none: compute fast scores)",
                style={"width": "320px"},
            ),
            html.Button("Load", id="load-btn"),
            html.Progress(id="load-progress", value="0", max="100"),
            html.Span(id="load-status"),
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
                id="prompt",
                value=DEFAULT_PROMPT,
                maxLength=MAX_CHARS,
                style={"width": "60%", "height": "60px"},
            ),
            html.Button("Analyse", id="analyse-btn"),
            html.Span("head", style=label),
            dcc.Dropdown(id="layer-dd", clearable=False, style={"width": "110px"}),
            dcc.Dropdown(id="head-dd", clearable=False, style={"width": "110px"}),
            html.Span(id="head-label", style={"fontWeight": "bold", "color": "#c00"}),
        ],
        style={**ROW, "margin": "10px 0"},
    )


def atlas_and_scatter() -> html.Div:
    """Sections 1 and 2, side by side."""
    return html.Div(
        [
            section(
                "1. Head atlas",
                dcc.Dropdown(id="atlas-score", clearable=False),
                graph("atlas"),
                id="view-atlas",
            ),
            section(
                "2. Heads by two scores",
                html.Div(
                    [
                        dcc.Dropdown(id="scatter-x", clearable=False, style={"flex": 1}),
                        dcc.Dropdown(id="scatter-y", clearable=False, style={"flex": 1}),
                    ],
                    style=ROW,
                ),
                graph("scatter"),
                id="view-scatter",
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
                dcc.RadioItems(id="attn-scale", options=list(SCALES), value="linear", inline=True),
                dcc.Checklist(
                    id="attn-hide-first",
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
        html.Div(id="attn-error", style=ERR),
        dcc.Loading(graph("attn-map")),
        id="view-attention",
    )


def geometry_section() -> html.Div:
    """Section 5: attention geometry."""
    return section(
        "5. Attention geometry (dot-product vs squared-dot-product scoring)",
        html.Div(id="geom-error", style=ERR),
        dcc.Loading(
            html.Div(
                [graph(g) for g in ("geom-hist", "geom-scatter", "geom-pca")],
                style={"display": "grid", "gridTemplateColumns": "1fr 1fr 1fr"},
            )
        ),
        id="view-geometry",
    )


def ablation_section() -> html.Div:
    """Section 6: the ablation playground."""
    return section(
        "6. Ablation playground",
        html.Div(
            [
                dcc.Dropdown(
                    id="ablate-heads",
                    multi=True,
                    placeholder="heads to ablate (L.H)",
                    style={"minWidth": "320px", "flex": 2},
                ),
                dcc.RadioItems(id="ablate-kind", options=list(KINDS), value="zero", inline=True),
                dcc.Input(
                    id="target",
                    placeholder="target token (default top-1)",
                    style={"width": "200px"},
                ),
                dcc.Input(
                    id="foil",
                    placeholder="foil token (default top-2)",
                    style={"width": "200px"},
                ),
                dcc.Input(
                    id="corrupted",
                    placeholder="corrupted prompt (resample only)",
                    style={"width": "320px"},
                ),
                html.Button("Run ablation", id="ablate-btn"),
            ],
            style=ROW,
        ),
        html.Div(id="ablate-error", style=ERR),
        html.Div(id="ablate-info", style={"margin": "6px 0", "fontFamily": "monospace"}),
        dcc.Loading(graph("ablate-fig")),
        id="view-ablation",
    )
