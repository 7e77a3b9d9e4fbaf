"""Screenshots of each dashboard view for docs/ (headless Chromium, as a user would click).

    python scripts/dashboard_screenshots.py --run runs/demo        # after `make demo`

Loads SmolLM2-135M with the run folder's tables, types a prompt, clicks a head in the atlas,
ablates heads in the playground, clicks a token of the text view, patches from a corrupted
prompt (then exactly on the top 10 heads), compares the two prompts, reads a 4,096-token
document in the long-document view and saves ``docs/dashboard_<view>.png`` plus the whole page.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dashboards import browser as b
from dashboards.serve import serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
VIEWS = {
    "atlas": "view-atlas",
    "scatter": "view-scatter",
    "attention": "view-attention",
    "geometry": "view-geometry",
    "ablation": "view-ablation",
    "tokens": "view-tokens",
    "layer": "view-layer",
    "rank": "view-rank",
    "patching": "view-patching",
    "compare": "view-compare",
    "card": "view-card",
    "long_document": "view-long-document",
}


def document(model: str, n_tokens: int) -> str:
    """The bundled haystack text cut to about ``n_tokens`` tokens of ``model``."""
    from interp.models import load_model

    text = (ROOT / "interp" / "data" / "haystack.txt").read_text()
    tok = load_model(model).tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"][:n_tokens]
    return tok.decode(ids)


def main(
    run: str = typer.Option(None, help="run folder of `interp scan` (default: fast scores)"),
    model: str = "smollm2-135m",
    prompt: str = "When Mary and John went to the store, John gave a drink to",
    layer: int = 17,
    head: int = 3,
    ablate: str = "L17.H3,L18.H6,L16.H0",
    target: str = " Mary",
    foil: str = " John",
    corrupted: str = "When Mary and John went to the store, Mary gave a drink to",
    token: int = 5,
    out: Path = ROOT / "docs",
    prefix: str = "dashboard",
    doc_tokens: int = 4096,
) -> None:
    server, state, url = serve_in_thread(model, run)
    d = b.make_driver(1500, 1100)
    try:
        d.get(url)
        b.wait_for(lambda: b.text_of(d, "load-status").startswith("ready"), 600, what="load")
        b.set_text(d, "prompt", prompt)
        d.find_element("id", "analyse-btn").click()
        b.wait_for(lambda: b.figure(d, "atlas"), what="atlas")
        b.click_cell(d, "atlas", head, layer)
        label = f"L{layer}.H{head}"
        b.wait_for(lambda: b.text_of(d, "head-label") == label, what="head selected")
        for graph in ("attn-map", "geom-hist", "geom-pca", "scatter"):
            b.wait_for(
                lambda g=graph: (
                    label in str((b.figure(d, g) or {}).get("layout", {}).get("title"))
                    or g == "scatter"
                ),
                120,
                what=graph,
            )
        b.choose_options(d, "ablate-heads", ablate.split(","))
        d.find_element("css selector", "#ablate-kind input[value='mean']").click()
        b.set_text(d, "target", target)
        b.set_text(d, "foil", foil)
        d.find_element("id", "ablate-btn").click()
        b.wait_for(lambda: "mean" in b.text_of(d, "ablate-info"), 120, what="ablation")
        spans = b.wait_for(lambda: d.find_elements("css selector", "#tok-text span"), what="text")
        spans[token].click()
        b.set_text(d, "patch-corrupted", corrupted)
        b.set_text(d, "patch-target", target)
        b.set_text(d, "patch-foil", foil)
        d.find_element("id", "patch-btn").click()
        b.wait_for(lambda: "clean" in b.text_of(d, "patch-info"), 600, what="patching")
        d.find_element("id", "patch-exact-btn").click()  # the top 10 heads, exactly
        b.wait_for(lambda: "exact on 10" in b.text_of(d, "patch-info"), 600, what="exact")
        b.set_text(d, "compare-prompt", corrupted)
        d.find_element("id", "compare-btn").click()
        b.wait_for(lambda: (b.figure(d, "compare-diff") or {}).get("data"), 120, what="compare")
        b.wait_for(lambda: label in b.text_of(d, "head-card"), 60, what="head card")
        b.paste_text(d, "doc-text", document(model, doc_tokens))
        d.find_element("id", "doc-btn").click()
        b.wait_for(lambda: "tokens through" in b.text_of(d, "doc-status"), 600, what="document")
        b.wait_for(lambda: (b.figure(d, "doc-overview") or {}).get("data"), 120, what="overview")
        b.click_cell(d, "doc-overview", doc_tokens // 2, head)
        b.wait_for(lambda: (b.figure(d, "doc-window") or {}).get("data"), 120, what="window")
        time.sleep(1.5)  # let plotly finish drawing
        out.mkdir(parents=True, exist_ok=True)
        for name, section in VIEWS.items():
            el = d.find_element("id", section)
            d.execute_script("arguments[0].scrollIntoView();", el)
            time.sleep(0.5)
            el.screenshot(str(out / f"{prefix}_{name}.png"))
        height = d.execute_script("return document.body.scrollHeight")
        d.set_window_size(1500, height + 50)
        d.execute_script("window.scrollTo(0, 0);")
        time.sleep(1.5)
        d.save_screenshot(str(out / f"{prefix}.png"))
        print(f"wrote {len(VIEWS) + 1} screenshots to {out}")
    finally:
        d.quit()
        server.close()
        del state


if __name__ == "__main__":
    typer.run(main)
