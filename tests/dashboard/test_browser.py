"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

``make test`` installs the browser first (scripts/setup_browser.sh). Where it cannot (no root,
no apt), these tests are skipped with that reason; every other dashboard test still runs.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dashboards import browser as b
from dashboards.analysis import MAX_CHARS, display_token
from dashboards.serve import serve_in_thread
from interp.defaults import SINK_THRESHOLD

pytestmark = pytest.mark.skipif(
    b.browser_paths() is None,
    reason="chromium/chromedriver not installed (scripts/setup_browser.sh installs them as root)",
)
PROMPT = "The cat sat on the mat. The cat"


@pytest.fixture(scope="module")
def app_url():
    server, state, url = serve_in_thread("tiny")
    yield url, state
    server.close()


@pytest.fixture(scope="module")
def driver(app_url):
    d = b.make_driver()
    d.get(app_url[0])
    b.wait_for(lambda: b.text_of(d, "load-status").startswith("ready"), 120, what="model loaded")
    yield d
    d.quit()


def _attention_title(d, label):
    f = b.figure(d, "attn-map")
    return f if f and label in str(f["layout"]["title"]) else None


def test_type_prompt_click_head_heatmap_shows_right_tokens_and_values(driver, app_url):
    d, state = driver, app_url[1]
    b.set_text(d, "prompt", PROMPT)
    d.find_element("id", "analyse-btn").click()
    b.wait_for(lambda: b.figure(d, "atlas"), what="atlas drawn")
    b.click_cell(d, "atlas", 2, 1)  # x = head 2, y = layer 1
    b.wait_for(lambda: b.text_of(d, "head-label") == "L1.H2", what="head L1.H2 selected")
    fig = b.wait_for(lambda: _attention_title(d, "L1.H2"), what="attention map of L1.H2")

    # independent reference: transformer-lens' own cache of the same model
    model = state.session.model
    ids = model.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = "blocks.1.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    ref = cache[name][0, 2].numpy()
    n = ids.shape[1]
    tokens = [display_token(model.tokenizer.decode([i])) for i in ids[0].tolist()]
    assert fig["layout"]["xaxis"]["ticktext"] == tokens
    z = np.array([[np.nan if v is None else v for v in row] for row in fig["data"][0]["z"]])
    assert z.shape == (n, n)
    np.testing.assert_allclose(z[np.tril_indices(n)], ref[np.tril_indices(n)], atol=1e-5)
    assert np.isnan(z[np.triu_indices(n, 1)]).all()
    # the hover reads the axes' categories: "token @position" of the query and the key
    trace = fig["data"][0]
    assert trace["x"][3] == f"{tokens[3]} @3" and trace["y"][5] == f"{tokens[5]} @5"
    assert "%{y}" in trace["hovertemplate"] and "%{x}" in trace["hovertemplate"]
    sinks = np.nonzero(ref.sum(0) / np.arange(n, 0, -1) > SINK_THRESHOLD)[0].tolist()
    assert fig["layout"]["meta"]["sinks"] == sinks


def test_hide_first_token_renormalises_the_map(driver):
    """Ticking "hide the first token" redraws the map without key 0, each row renormalised over
    the other keys (rows sum to 1 again); unticking restores the model's weights."""
    d = driver
    d.find_element("css selector", "#attn-hide-first input").click()
    fig = b.wait_for(
        lambda: (f := b.figure(d, "attn-map")) and "first token hidden" in str(f["layout"]["title"])
        and f, what="map without the first token",
    )  # fmt: skip
    z = np.array([[np.nan if v is None else v for v in row] for row in fig["data"][0]["z"]])
    assert np.isnan(z[:, 0]).all()
    np.testing.assert_allclose(np.nansum(z[1:, 1:], axis=1), 1.0, atol=1e-5)
    d.find_element("css selector", "#attn-hide-first input").click()
    b.wait_for(
        lambda: (f := b.figure(d, "attn-map")) and "hidden" not in str(f["layout"]["title"]),
        what="map restored",
    )


def test_german_and_japanese_tokens_render_as_characters(driver):
    """Byte-level pieces of one character show the character once (the other pieces are marked
    as its continuation) in the map's ticks and in the text view, never the replacement
    character."""
    from interp.tokens import CONTINUATION

    d = driver
    b.set_text(d, "prompt", "Grüße 日本!")
    d.find_element("id", "analyse-btn").click()
    fig = b.wait_for(
        lambda: (f := b.figure(d, "attn-map")) and "日" in str(f["layout"]["xaxis"]["ticktext"])
        and f, what="map of the German and Japanese prompt",
    )  # fmt: skip
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert not any("\ufffd" in t for t in ticks) and ticks.count("日") == 1
    i = ticks.index("日")
    assert ticks[i + 1 : i + 3] == [CONTINUATION] * 2  # 3 UTF-8 bytes
    text = b.wait_for(lambda: "日" in (t := b.text_of(d, "tok-text")) and t, what="text view")
    assert "\ufffd" not in text and "ü" in text
    b.set_text(d, "prompt", PROMPT)
    d.find_element("id", "analyse-btn").click()


def test_scatter_click_selects_head_and_geometry_follows(driver, app_url):
    d, state = driver, app_url[1]
    scores = state.session.scores
    f = b.wait_for(lambda: b.figure(d, "scatter"), what="scatter drawn")
    x_col, y_col = str(f["layout"]["title"]).removeprefix("Heads by ").split(" and ")
    row = scores[(scores["layer"] == 0) & (scores["head"] == 3)].iloc[0]
    b.click_cell(d, "scatter", float(row[x_col]), float(row[y_col]))
    b.wait_for(lambda: b.text_of(d, "head-label") == "L0.H3", what="head L0.H3 selected")
    hist = b.wait_for(
        lambda: (g := b.figure(d, "geom-hist")) and "L0.H3" in str(g["layout"]["title"]) and g,
        what="geometry of L0.H3",
    )
    assert [t["name"] for t in hist["data"]] == [
        "all visible pairs",
        "weighted by the head's attention (softmax)",
        "weighted by EA from the same q, k",
    ]


def test_ablation_playground_changes_distribution(driver, app_url):
    d, state = driver, app_url[1]
    b.set_text(d, "prompt", PROMPT)
    b.choose_options(d, "ablate-heads", ["L1.H2", "L0.H0"])
    d.find_element("id", "ablate-btn").click()
    info = b.wait_for(
        lambda: "L1.H2" in (t := b.text_of(d, "ablate-info")) and "L0.H0" in t and t,
        what="ablation result",
    )
    model = state.session.model
    ids = model.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    from interp.ablation.heads import ablate

    with torch.no_grad():
        clean = model(ids)[0, -1]
        with ablate(model, [(1, 2), (0, 0)], "zero"):
            abl = model(ids)[0, -1]
    t, f = clean.topk(2).indices.tolist()
    want_c, want_a = float(clean[t] - clean[f]), float(abl[t] - abl[f])
    assert f"clean {want_c:+.3f}" in info and f"ablated {want_a:+.3f}" in info
    fig = b.figure(d, "ablate-fig")
    assert [t["name"] for t in fig["data"]] == ["clean", "ablated"]


def test_layer_ranking_and_patching_views(driver, app_url):
    """Section 6 draws every head of the selected layer (values = transformer-lens' cache),
    section 7 ranks heads by a score computed on the prompt (= the dense computation), section
    8 patches from a corrupted prompt and reports the clean logit difference of a plain run."""
    from interp.heads.classic import induction_pattern, pattern_scores
    from interp.inputs.text import all_patterns
    from interp.tokens import tokenize

    d, state = driver, app_url[1]
    b.set_text(d, "prompt", PROMPT)
    d.find_element("id", "analyse-btn").click()
    b.click_cell(d, "atlas", 1, 1)
    b.wait_for(lambda: b.text_of(d, "head-label") == "L1.H1", what="head L1.H1 selected")
    fig = b.wait_for(
        lambda: (f := b.figure(d, "layer-fig")) and "Layer 1" in str(f["layout"]["title"]) and f,
        what="layer 1's heads",
    )
    model = state.session.model
    ids = model.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = "blocks.1.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    card = b.wait_for(lambda: "L1.H1" in (t := b.text_of(d, "head-card")) and t, what="head card")
    assert "induction" in card and "threshold" in card  # each detector's row, its threshold
    assert len(fig["data"]) == model.cfg.n_heads
    for h, trace in enumerate(fig["data"]):
        np.testing.assert_allclose(np.array(trace["z"]), cache[name][0, h].numpy(), atol=1e-5)

    bars = b.wait_for(lambda: b.figure(d, "rank-bars"), what="ranked heads")
    assert "induction" in str(bars["layout"]["title"])
    batch = tokenize(model, [PROMPT])
    ind = pattern_scores(all_patterns(model, batch), batch.tokens, batch.lengths,
                         induction_pattern).reshape(-1)  # fmt: skip
    best = int(ind.argmax())
    assert bars["data"][0]["y"][0] == f"L{best // model.cfg.n_heads}.H{best % model.cfg.n_heads}"
    assert bars["data"][0]["x"][0] == pytest.approx(float(ind.max()), abs=1e-5)

    b.set_text(d, "patch-corrupted", PROMPT.replace("mat", "hat"))
    d.find_element("id", "patch-btn").click()
    info = b.wait_for(lambda: "clean" in (t := b.text_of(d, "patch-info")) and t, what="patching")
    with torch.no_grad():
        logits = model(ids)[0, -1]
    t, f = logits.topk(2).indices.tolist()
    assert f"clean {float(logits[t] - logits[f]):+.3f}" in info
    effect = b.figure(d, "patch-effect")
    assert np.array(effect["data"][0]["z"]).shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert "exact: none yet" in info  # the first answer is the attribution estimate

    b.set_text(d, "patch-exact-n", "3")
    d.find_element("id", "patch-exact-btn").click()
    info = b.wait_for(lambda: "exact on 3 heads" in (t := b.text_of(d, "patch-info")) and t,
                      what="exact patching of 3 heads")  # fmt: skip
    from interp.ablation.patching import activation_patching

    clean = tokenize(model, [PROMPT])
    dirty = tokenize(model, [PROMPT.replace("mat", "hat")])
    with torch.no_grad():
        ref = activation_patching(
            model, clean, dirty, lambda o: float(o[0, -1, t] - o[0, -1, f]), progress=False
        )

    # while a long patching run works, the poll shows its progress (any client's run here)
    class Running(dict):
        def get(self, key, default=None):
            return (2, 5, "exact patching")

    saved, state.progress = state.progress, Running()
    try:
        b.wait_for(
            lambda: b.text_of(d, "patch-progress-text") == "exact patching: 2 of 5 heads",
            what="progress shown",
        )
        bar = d.find_element("id", "patch-progress")
        assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("2", "5")
    finally:
        state.progress = saved
    b.wait_for(lambda: b.text_of(d, "patch-progress-text") == "", what="progress cleared")
    shown = re.findall(r"(L\d+\.H\d+) ([+-]\d+\.\d+) \(est", info)
    assert len(shown) == 3
    for label, value in shown:
        la, h = map(int, label[1:].split(".H"))
        assert float(value) == pytest.approx(float(ref[la, h]), abs=0.006)  # 2 decimals shown


def test_token_text_view_and_prompt_comparison(driver, app_url):
    """Clicking a token shades the others by its row of the head's pattern (then by its column
    in "attended by" mode), as transformer-lens' cache says; comparing two prompts of the same
    length draws their difference A - B."""
    d, state = driver, app_url[1]
    b.set_text(d, "prompt", PROMPT)
    d.find_element("id", "analyse-btn").click()
    b.click_cell(d, "atlas", 2, 1)
    b.wait_for(lambda: b.text_of(d, "head-label") == "L1.H2", what="head L1.H2 selected")
    model = state.session.model
    ids = model.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = "blocks.1.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    ref = cache[name][0, 2].numpy()

    def weights():
        spans = d.find_elements("css selector", "#tok-text span")
        return [float(s.get_attribute("data-weight")) for s in spans]

    # drawn for this head (the last token selected) before a click: a click on the text of the
    # previous head would land on spans that are about to be replaced
    last = ids.shape[1] - 1
    b.wait_for(
        lambda: len(weights()) == ids.shape[1] and np.allclose(weights(), ref[last], atol=1e-5),
        what="token text drawn",
    )
    d.find_elements("css selector", "#tok-text span")[7].click()
    b.wait_for(lambda: np.allclose(weights(), ref[7], atol=1e-5), what="row 7 shading")
    d.find_element("css selector", "#tok-mode input[value='attended by']").click()
    b.wait_for(lambda: np.allclose(weights(), ref[:, 7], atol=1e-5), what="column 7 shading")

    other = PROMPT.replace("mat", "hat")
    b.set_text(d, "compare-prompt", other)
    d.find_element("id", "compare-btn").click()
    diff = b.wait_for(
        lambda: (f := b.figure(d, "compare-diff")) and f.get("data") and f, what="difference"
    )
    other_ids = model.tokenizer(other, add_special_tokens=False, return_tensors="pt")["input_ids"]
    _, cache_b = model.run_with_cache(other_ids, names_filter=lambda n: n == name)
    want = ref - cache_b[name][0, 2].numpy()
    np.testing.assert_allclose(np.array(diff["data"][0]["z"]), want, atol=1e-5)


def test_errors_show_in_page(driver):
    d = driver
    b.set_text(d, "prompt", "")
    d.execute_script(  # maxLength stops typing; set an over-long value the way a paste would
        "const el = document.getElementById('prompt');"
        "const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;"
        "el.removeAttribute('maxlength'); set.call(el, 'x'.repeat(arguments[0]));"
        "el.dispatchEvent(new Event('input', {bubbles: true}));",
        MAX_CHARS + 10,
    )
    d.find_element("id", "analyse-btn").click()
    msg = b.wait_for(lambda: b.text_of(d, "attn-error"), what="prompt-length error")
    assert f"at most {MAX_CHARS}" in msg
    b.set_text(d, "model-name", "no-such-model")
    d.find_element("id", "load-btn").click()
    msg = b.wait_for(lambda: b.text_of(d, "load-error"), what="unknown-model error")
    assert "unknown model 'no-such-model'" in msg
    b.set_text(d, "model-name", "tiny")
    b.set_text(d, "run-dir", "/no/such/run")
    d.find_element("id", "load-btn").click()
    b.wait_for(lambda: "does not exist" in b.text_of(d, "load-error"), what="bad run error")
    assert "Traceback" not in d.page_source


def test_a_link_restores_prompt_and_head_and_the_url_follows_the_view(driver, app_url):
    """Opening ?prompt=..&layer=1&head=3 restores them once the model is loaded; picking another
    head rewrites the address (no reload), so a refresh or a shared link shows the same view."""
    from urllib.parse import parse_qs, urlsplit

    d, url = driver, app_url[0]
    d.get(f"{url}?model=tiny&prompt=The%20dog%20ran&layer=1&head=3")
    b.wait_for(lambda: b.text_of(d, "load-status").startswith("ready"), 120, what="model loaded")
    try:
        b.wait_for(lambda: b.text_of(d, "head-label") == "L1.H3", 20, what="head from the link")
    except TimeoutError:
        raise AssertionError(
            f"label {b.text_of(d, 'head-label')!r} prompt "
            f"{d.find_element('id', 'prompt').get_attribute('value')!r} status "
            f"{b.text_of(d, 'load-status')!r} url {d.current_url}"
        ) from None
    assert d.find_element("id", "prompt").get_attribute("value") == "The dog ran"
    # the views not tied to the head (ablation, ranking) are computed on the link's prompt,
    # never left on the page's default prompt (issue: a shared link showed the default there)
    model = app_url[1].session.model
    ids = model.tokenizer("The dog ran", add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(ids["input_ids"])[0, -1]
    t, f = logits.topk(2).indices.tolist()
    clean = f"clean {float(logits[t] - logits[f]):+.3f}"
    b.wait_for(lambda: clean in b.text_of(d, "ablate-info"), what="ablation on the link's prompt")
    from interp.heads.classic import induction_pattern, pattern_scores
    from interp.inputs.text import all_patterns
    from interp.tokens import tokenize

    batch = tokenize(model, ["The dog ran"])
    ind = pattern_scores(all_patterns(model, batch), batch.tokens, batch.lengths,
                         induction_pattern).reshape(-1)  # fmt: skip
    best = f"L{int(ind.argmax()) // model.cfg.n_heads}.H{int(ind.argmax()) % model.cfg.n_heads}"
    b.wait_for(
        lambda: (f := b.figure(d, "rank-bars")) and f["data"] and f["data"][0]["y"][0] == best
        and abs(f["data"][0]["x"][0] - float(ind.max())) < 1e-5,
        what="ranking on the link's prompt",
    )  # fmt: skip
    b.wait_for(lambda: b.figure(d, "atlas"), what="atlas drawn")
    b.click_cell(d, "atlas", 2, 0)
    b.wait_for(lambda: b.text_of(d, "head-label") == "L0.H2", what="head L0.H2 selected")
    args = b.wait_for(
        lambda: (q := parse_qs(urlsplit(d.current_url).query)).get("head") == ["2"] and q,
        what="URL rewritten",
    )
    assert args["layer"] == ["0"] and args["prompt"] == ["The dog ran"]
