"""Inline views for notebooks: the dashboard's figures from a ``run_heads`` result, a run folder
or a long document, rendered in Jupyter without a network connection (``render.Shown``).

    import interp
    from interp import show

    model = interp.load_model("smollm2-135m")
    run = interp.run_heads(model, ["When Mary and John went to the store, John gave"],
                           hooks=["pattern"], layers=[3])
    show.attention(run, 3, 0)          # one head's map (sinks outlined)
    show.layer(run, 3)                 # every head of the layer
    show.text(run, 3, 0)               # the prompt shaded by what its last token reads
    show.to_circuitsvis(run, 3)        # kwargs for circuitsvis.attention.attention_heads
    show.head_card("runs/demo", 3, 0)  # what a scan found about the head
    doc = show.long_document(model, long_text, layer=15)  # thousands of tokens, no n x n
    doc.window(head=2, start=1000)     # the exact map of any window

Every function returns an object that renders itself (``Shown`` or ``LongDocument``); the
plotly figure is ``.figure``.
"""

from __future__ import annotations

from pathlib import Path
from typing import no_type_check

import pandas as pd
import torch

from interp.attention import HeadActivations
from interp.errors import InputError
from interp.show.long_document import STATISTICS, LongDocument, long_document
from interp.show.maps import attention_map, layer_grid
from interp.show.render import Shown, token_spans
from interp.tokens import display_token

__all__ = [
    "STATISTICS",
    "LongDocument",
    "Shown",
    "attention",
    "head_card",
    "layer",
    "long_document",
    "text",
    "to_circuitsvis",
]
MODES = ("attends to", "attended by")


@no_type_check
def _pattern(run: HeadActivations, layer: int, prompt: int) -> tuple[torch.Tensor, list[str]]:
    """[head, query, key] pattern of one prompt (padding cut) and its display tokens."""
    if not isinstance(run, HeadActivations):
        raise InputError(
            f"expected the result of interp.run_heads, got {type(run).__name__}: run "
            "interp.run_heads(model, prompts, hooks=['pattern'], layers=[...]) first"
        )
    if not 0 <= prompt < len(run.lengths):
        raise InputError(f"prompt {prompt} does not exist: the run holds {len(run.lengths)}")
    try:
        pattern = run.pattern(layer)
    except KeyError:
        raise InputError(
            f"this run holds no attention pattern of layer {layer}: run "
            f"interp.run_heads(model, prompts, hooks=['pattern'], layers=[{layer}])"
        ) from None
    n = run.lengths[prompt]
    tokens = [display_token(t) for t in run.batch.str_tokens[prompt][:n]]
    return pattern[prompt, :, :n, :n].detach().float().cpu(), tokens


def _head(pattern: torch.Tensor, head: int) -> torch.Tensor:
    if not 0 <= head < pattern.shape[0]:
        raise InputError(f"head {head} does not exist: heads 0..{pattern.shape[0] - 1}")
    return pattern[head]


def _causal(pattern: torch.Tensor) -> bool:
    """Causal when no query puts weight on a later key."""
    return bool((pattern.triu(1) == 0).all())


@no_type_check  # checks its input itself (a clear InputError)
def attention(
    run: HeadActivations,
    layer: int,
    head: int,
    prompt: int = 0,
    *,
    scale: str = "linear",
    hide_first: bool = False,
) -> Shown:
    """One head's attention map on one prompt of ``run`` (the dashboard's map: dense and
    token-labelled up to 512 tokens, sink keys outlined; ``scale`` linear / log / percentile;
    ``hide_first`` renormalises each row without the first token)."""
    pattern, tokens = _pattern(run, layer, prompt)
    a = _head(pattern, head)
    return Shown(
        attention_map(
            a,
            tokens,
            name=f"L{layer}.H{head}",
            causal=_causal(pattern),
            scale=scale,
            hide_first=hide_first,
        )  # fmt: skip
    )


@no_type_check  # checks its input itself (a clear InputError)
def layer(run: HeadActivations, layer: int, prompt: int = 0, selected: int | None = None) -> Shown:
    """Every head of ``layer`` on one prompt, small multiples with one color scale."""
    pattern, _ = _pattern(run, layer, prompt)
    return Shown(layer_grid(pattern, layer, selected))


@no_type_check  # checks its input itself (a clear InputError)
def text(
    run: HeadActivations,
    layer: int,
    head: int,
    token: int = -1,
    prompt: int = 0,
    mode: str = "attends to",
) -> Shown:
    """The prompt as text, each token shaded by the head's weight from ``token`` to it
    ("attends to": the token's row) or from it to ``token`` ("attended by": its column),
    CircuitsVis-style; hover a token for its weight."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    pattern, tokens = _pattern(run, layer, prompt)
    a = _head(pattern, head)
    n = len(tokens)
    if not -n <= token < n:
        raise InputError(f"token {token} does not exist: the prompt has {n} tokens")
    token %= n
    weights = a[token] if mode == "attends to" else a[:, token]
    caption = f"L{layer}.H{head}: what {tokens[token]!r} @{token} {mode.split()[0]} " + (
        "to" if mode == "attends to" else "by"
    )
    return Shown(html_text=token_spans(tokens, weights.tolist(), token, caption))


@no_type_check  # checks its input itself (a clear InputError)
def to_circuitsvis(
    run: HeadActivations, layer: int, prompt: int = 0, heads: list[int] | None = None
) -> dict:
    """The keyword arguments of CircuitsVis' ``attention.attention_heads`` (and, without
    ``attention_head_names``, ``attention_patterns``): ``attention`` [head, dest, src] as
    nested lists, ``tokens``, ``attention_head_names`` ("L3H0"). JSON-ready:
    ``json.dump(data, f)``, or ``circuitsvis.attention.attention_heads(**data)``."""
    pattern, tokens = _pattern(run, layer, prompt)
    heads = list(range(pattern.shape[0])) if heads is None else [int(h) for h in heads]
    for h in heads:
        _head(pattern, h)
    return {
        "attention": pattern[heads].tolist(),
        "tokens": tokens,
        "attention_head_names": [f"L{layer}H{h}" for h in heads],
    }


def head_card(run_dir: str | Path, layer: int, head: int) -> Shown:
    """What an ``interp scan`` run folder says about one head: every detector's score,
    threshold and label, then the head statistics."""
    from interp.runs.folder import RunFolder

    stats, tables, manifest = RunFolder(run_dir).scores()
    rows = []
    for name, t in sorted(tables.items()):
        row = t[(t.layer == layer) & (t["head"] == head)]
        if not row.empty:
            r = row.iloc[0]
            rows.append(
                {"detector": name, "score": float(r.score), "threshold": float(r.threshold),
                 "label": bool(r.label)}
            )  # fmt: skip
    mine = None if stats is None else stats[(stats.layer == layer) & (stats["head"] == head)]
    if not rows and (mine is None or mine.empty):
        raise InputError(f"head L{layer}.H{head} is in no table of {run_dir}")
    parts = [f"<h4>L{layer}.H{head} ({manifest.get('model', 'model')})</h4>"]
    if rows:
        parts.append(pd.DataFrame(rows).to_html(index=False, float_format="{:.4f}".format))
    if mine is not None and not mine.empty:
        row = mine.drop(columns=["layer", "head"]).iloc[0]
        values = row.to_frame("value").rename_axis("statistic").reset_index()
        parts.append(values.to_html(index=False, float_format="{:.4f}".format))
    return Shown(html_text="<div class='interp-head-card'>" + "".join(parts) + "</div>")
