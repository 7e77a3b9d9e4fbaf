"""The long-document view in a real browser: a 4,096-token document through a local model
folder (a tiny random Llama saved with an 8k context), checked against the dense pattern of the
model's own eager attention, and timed (the time is printed; the figures are in docs/results.md)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from dashboards import browser as b
from dashboards.serve import serve_in_thread
from interp.models.tiny import tiny_llama, tiny_tokenizer
from interp.stats import dense

pytestmark = pytest.mark.skipif(
    b.browser_paths() is None,
    reason="chromium/chromedriver not installed (scripts/setup_browser.sh installs them as root)",
)
N = 4096


def _document() -> str:
    """4,096 byte tokens (the tiny tokenizer: one token per ASCII character)."""
    words = "the sink heads read the first token while local heads read their neighbours; "
    return (words * (N // len(words) + 1))[:N]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny8k")
    hf = tiny_llama(n_ctx=8192)
    hf.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    server, state, url = serve_in_thread(str(folder))
    d = b.make_driver()
    d.get(url)
    b.wait_for(lambda: b.text_of(d, "load-status").startswith("ready"), 180, what="model loaded")
    yield d, hf
    d.quit()
    server.close()


def test_a_4k_token_document_shows_every_head_and_exact_windows(served):
    d, hf = served
    text = _document()
    b.paste_text(d, "doc-text", text)
    t0 = time.perf_counter()
    d.find_element("id", "doc-btn").click()
    b.wait_for(lambda: "4,096 tokens" in b.text_of(d, "doc-status"), 300, what="document read")
    b.wait_for(lambda: (f := b.figure(d, "doc-overview")) and f["data"], 60, what="overview")
    seconds = time.perf_counter() - t0
    print(f"\nlong document: {N} tokens, click to overview drawn in {seconds:.1f} s")

    ids = tiny_tokenizer()(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ids.shape[1] == N
    with torch.no_grad():
        out = hf(ids, output_attentions=True)  # eager attention: the model's own pattern
    fig = b.figure(d, "doc-overview")
    ref = out.attentions[fig["layout"]["meta"]["layer"]][0].float()  # the page's layer
    z = np.array(fig["data"][0]["z"], dtype=float)
    assert z.shape == (hf.config.num_attention_heads, N)
    np.testing.assert_allclose(z, ref[:, :, 0].numpy(), atol=1e-4)  # sink mass, 4 decimals
    assert fig["layout"]["meta"]["n"] == N

    b.click_cell(d, "doc-overview", 3000, 2)  # head 2 around position 3000
    b.wait_for(
        lambda: (
            (w := b.figure(d, "doc-window"))
            and w["layout"]["meta"]
            and w["layout"]["meta"]["head"] == 2
        ),
        60,
        what="window of head 2",
    )
    w = b.figure(d, "doc-window")
    start = w["layout"]["meta"]["start"]
    # centred on the clicked position, within a pixel (4,096 positions over ~1,300 px)
    assert abs(start + 64 - 3000) <= 8
    got = np.array([[np.nan if v is None else v for v in row] for row in w["data"][0]["z"]])
    want = ref[2, start : start + 128][:, [0, *range(start, start + 128)]].numpy()
    visible = ~np.isnan(got)
    np.testing.assert_allclose(got[visible], want[visible], atol=1e-4)
    assert visible[:, 0].all() and np.isnan(got[0, 2:]).all()  # causal: later keys blank
    received = dense.sink_scores(ref[None], [N])[0]
    b.paste_text(d, "doc-text", text)  # unchanged text: the cached statistics are reused
    d.find_element("id", "doc-stat").find_elements("css selector", "input")[3].click()
    b.wait_for(
        lambda: (
            (f := b.figure(d, "doc-overview")) and f["layout"]["meta"]["statistic"] == "received"
        ),
        60,
        what="received attention",
    )
    z = np.array(b.figure(d, "doc-overview")["data"][0]["z"], dtype=float)
    np.testing.assert_allclose(z, received.numpy(), atol=1e-4)
