"""Notebook views (interp.show) checked against transformer-lens' own patterns and dense
statistics, and rendered by a real Jupyter kernel (nbclient, headless)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import interp
from interp import show
from interp.errors import InputError
from interp.heads.base import DetectorResult
from interp.runs.folder import RunFolder
from interp.stats import dense

PROMPT = "The cat sat on the mat. The cat"


def _tl_pattern(model, text: str, layer: int) -> torch.Tensor:
    """[head, query, key] straight from transformer-lens' run_with_cache (not interp)."""
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    return cache[name][0].float()


@pytest.fixture(scope="module")
def run(tiny):
    return interp.run_heads(tiny, [PROMPT, "ab <b>x</b>"], hooks=["pattern"], layers=[1])


def test_attention_map_equals_transformer_lens(tiny, run):
    ref = _tl_pattern(tiny, PROMPT, 1)[2].numpy()
    fig = show.attention(run, 1, 2).figure
    z = np.array(fig.data[0].z, dtype=float)
    lower = np.tril_indices(len(ref))
    np.testing.assert_allclose(z[lower], ref[lower], atol=1e-5)
    assert np.isnan(z[np.triu_indices(len(ref), 1)]).all()  # a causal model: upper blank
    assert list(fig.layout.xaxis.ticktext)[:3] == ["T", "h", "e"]


def test_text_shades_each_token_by_the_row_and_escapes_html(tiny, run):
    ref = _tl_pattern(tiny, PROMPT, 1)[2]
    out = show.text(run, 1, 2, token=-1).html
    n = ref.shape[0]
    for j in (0, 5, n - 1):
        assert f"@{j}: {float(ref[n - 1, j]):.4f}'" in out
    by = show.text(run, 1, 2, token=3, mode="attended by").html
    assert f"@10: {float(ref[10, 3]):.4f}'" in by
    tagged = show.text(run, 1, 0, prompt=1).html
    assert "<b>x" not in tagged and "&lt;" in tagged  # token text never becomes markup
    with pytest.raises(InputError, match="unknown mode"):
        show.text(run, 1, 0, mode="sideways")


def test_circuitsvis_export_has_its_shape_and_values(tiny, run):
    data = show.to_circuitsvis(run, 1, heads=[0, 2])
    ref = _tl_pattern(tiny, PROMPT, 1)
    att = np.array(data["attention"])
    assert att.shape == (2, ref.shape[1], ref.shape[2])  # [head, dest, src]
    np.testing.assert_allclose(att, ref[[0, 2]].numpy(), atol=1e-5)
    assert data["attention_head_names"] == ["L1H0", "L1H2"] and len(data["tokens"]) == att.shape[1]
    assert json.loads(json.dumps(data))["tokens"] == data["tokens"]


def test_bad_requests_say_what_to_do(tiny, run):
    with pytest.raises(InputError, match="hooks=\\['pattern'\\], layers=\\[0\\]"):
        show.attention(run, 0, 0)
    with pytest.raises(InputError, match="heads 0..3"):
        show.attention(run, 1, 9)
    with pytest.raises(InputError, match="result of interp.run_heads"):
        show.layer(torch.zeros(3), 1)


def test_long_document_statistics_and_windows_equal_the_dense_pattern(tiny):
    text = "the quick brown fox jumps over the lazy dog; " * 8  # 360 byte tokens
    doc = show.long_document(tiny, text, 1)
    ref = _tl_pattern(tiny, text, 1)  # [head, n, n]
    n = ref.shape[-1]
    assert len(doc.tokens) == n
    received = dense.sink_scores(ref[None], [n])[0].numpy()
    np.testing.assert_allclose(doc.values("received"), received, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(doc.values("sink mass"), ref[:, :, 0].numpy(), atol=1e-5)
    ent = -(ref * ref.clamp_min(1e-30).log()).sum(-1)
    np.testing.assert_allclose(doc.values("entropy"), ent.numpy(), atol=1e-4)
    dist = (ref * (torch.arange(n)[:, None] - torch.arange(n)[None]).abs()).sum(-1)
    np.testing.assert_allclose(doc.values("mean distance"), dist.numpy(), rtol=1e-4, atol=1e-3)
    w = doc.window_weights(3, 200, 40)  # keys: token 0, then 200..239
    np.testing.assert_allclose(w[:, 0], ref[3, 200:240, 0].numpy(), atol=1e-6)
    got, want = w[:, 1:], ref[3, 200:240, 200:240].numpy()
    lower = np.tril_indices(40)
    np.testing.assert_allclose(got[lower], want[lower], atol=1e-6)
    assert np.isnan(got[np.triu_indices(40, 1)]).all()
    fig = doc.window(3, 200, 40).figure
    assert fig.layout.meta["keys"][:2] == [0, 200] and "exact weights" in fig.layout.title.text
    overview = doc.figure("entropy", head=3)
    assert np.array(overview.data[0].z).shape == (tiny.cfg.n_heads, n)


def test_long_document_refuses_what_it_cannot_show(tiny):
    with pytest.raises(InputError, match="layers 0..1"):
        show.long_document(tiny, "abc", 5)
    with pytest.raises(InputError, match="more than the limit of 1024"):
        show.long_document(tiny, "x" * 1100, 0)  # tiny's context: 1024 tokens
    doc = show.long_document(tiny, "abcdef", 0)
    with pytest.raises(InputError, match="unknown statistic"):
        doc.figure("loudness")
    with pytest.raises(InputError, match="inside the document"):
        doc.window(0, 99)


def test_head_card_reads_a_run_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    table = pd.DataFrame(
        {"layer": [0, 0, 1], "head": [0, 1, 0], "score": [0.9, 0.2, 0.05],
         "threshold": [0.3] * 3, "label": [True, False, False]}
    )  # fmt: skip
    folder.save_detector(DetectorResult("sink", table, {}))
    folder.write_manifest({"model": "tiny", "detectors": {"sink": {}}})
    card = show.head_card(folder.root, 0, 1).html
    assert "L0.H1 (tiny)" in card and "0.2000" in card and "sink" in card
    with pytest.raises(InputError, match="no table"):
        show.head_card(folder.root, 5, 5)


NOTEBOOK_CELLS = [
    "import interp\nfrom interp import show\nmodel = interp.load_model('tiny')\n"
    "run = interp.run_heads(model, ['The cat sat on the mat. The cat'], hooks=['pattern'], "
    "layers=[1])",
    "show.attention(run, 1, 2)",
    "show.layer(run, 1)",
    "show.text(run, 1, 2)",
    "doc = show.long_document(model, 'the quick brown fox ' * 30, 1)\ndoc",
    "doc.window(2, 300, 32)",
]


def test_views_render_in_a_headless_notebook():
    """A real kernel runs the README's notebook snippet: every view returns a rich output
    (plotly's MIME type and self-contained HTML for figures, HTML for text), no error."""
    nbformat = pytest.importorskip("nbformat", reason="installed with the dev extra")
    nbclient = pytest.importorskip("nbclient", reason="installed with the dev extra")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [c.outputs for c in nb.cells]
    assert all(o.output_type != "error" for out in outputs for o in out)
    for i in (1, 2, 4, 5):  # figures
        data = outputs[i][-1]["data"]
        assert "application/vnd.plotly.v1+json" in data and "<div" in data["text/html"]
    first_html = outputs[1][-1]["data"]["text/html"]
    assert len(first_html) > 1_000_000  # plotly.js itself travels with the first figure
    assert len(outputs[2][-1]["data"]["text/html"]) < len(first_html) / 10  # then by reference
    text = outputs[3][-1]["data"]["text/html"]
    assert text.count("<span") == 31 and math.isfinite(len(text))
