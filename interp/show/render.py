"""What a notebook displays: ``Shown`` wraps a plotly figure or an HTML fragment and renders
inline in Jupyter, JupyterLab and VS Code without a network connection.

A figure is offered as plotly's own MIME type (``application/vnd.plotly.v1+json``: JupyterLab
and VS Code draw it with their bundled plotly) and as HTML for the classic notebook and static
exports. The HTML carries plotly.js itself (no CDN): in full with the first figure a Python
process shows and by reference after that (``PLOTLYJS = "once"``), or in every figure
(``"always"``: each output stands alone, ~3.5 MB each).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.graph_objects as go

PLOTLYJS = "once"  # or "always"
_SENT = {"plotlyjs": False}


def _include_plotlyjs() -> bool:
    if PLOTLYJS == "always" or not _SENT["plotlyjs"]:
        _SENT["plotlyjs"] = True
        return True
    return False


class Shown:
    """A figure (``.figure``) or HTML (``.html``) that renders inline in a notebook."""

    def __init__(self, figure: go.Figure | None = None, html_text: str | None = None) -> None:
        if (figure is None) == (html_text is None):
            raise ValueError("give a figure or HTML, not both")
        self.figure = figure
        self.html = html_text

    def __repr__(self) -> str:
        if self.figure is not None:
            title = self.figure.layout.title.text or "figure"
            return f"Shown(figure: {title[:80]})"
        return f"Shown(html: {len(self.html or '')} characters)"

    def to_html(self, full_html: bool = False) -> str:
        if self.figure is None:
            return self.html or ""
        return self.figure.to_html(full_html=full_html, include_plotlyjs=_include_plotlyjs())

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        if self.figure is None:
            return {"text/html": self.html}
        return {
            "application/vnd.plotly.v1+json": json.loads(self.figure.to_json()),
            "text/html": self.to_html(),
            "text/plain": repr(self),
        }

    def save(self, path: str | Path) -> Path:
        """A standalone HTML file (plotly.js inside: opens offline)."""
        path = Path(path)
        if self.figure is not None:
            self.figure.write_html(path, include_plotlyjs=True)
        else:
            path.write_text(f"<!doctype html><meta charset='utf-8'>{self.html}", encoding="utf-8")
        return path


def shade(weight: float, top: float) -> str:
    """CSS background for a weight: blue with opacity weight / top (0 when top is 0)."""
    alpha = 0.0 if top <= 0 else max(0.0, min(1.0, weight / top))
    ink = "white" if alpha > 0.6 else "black"
    return f"background: rgba(33, 102, 172, {alpha:.3f}); color: {ink}"


def token_spans(tokens: list[str], weights: list[float], selected: int, caption: str) -> str:
    """Tokens as inline spans shaded by ``weights``; ``selected`` underlined; each span's
    title gives its position and weight. Escaped: any token text is safe."""
    top = max(weights) if weights else 0.0
    spans = []
    for i, (tok, w) in enumerate(zip(tokens, weights, strict=True)):
        style = shade(w, top) + ("; border-bottom: 2px solid #b2182b" if i == selected else "")
        spans.append(
            f"<span title='{html.escape(tok)} @{i}: {w:.4f}' "
            f"style='{style}; padding: 1px 2px; margin: 1px; border-radius: 3px; "
            f"font-family: monospace; white-space: pre'>{html.escape(tok)}</span>"
        )
    return (
        f"<div class='interp-text'><div style='font-size: 0.9em; margin-bottom: 4px'>"
        f"{html.escape(caption)}</div><div style='line-height: 1.9'>{''.join(spans)}</div></div>"
    )
