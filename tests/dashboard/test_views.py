"""Dashboard computations and figures against independent references (no browser here)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from dashboards import analysis as an
from dashboards.figures import attention_figure, geometry_figures
from dashboards.state import AppState
from dashboards.tables import merge_scores, read_run, score_columns
from interp.ablation.heads import ablate, head_means
from interp.defaults import SINK_THRESHOLD
from interp.errors import InputError
from interp.runs.scan import scan
from interp.show import maps

PROMPT = "The cat sat on the mat. The cat"


def _reference_pattern(model, text, layer, head):
    """hook_pattern straight from transformer-lens' run_with_cache (not interp.run_heads)."""
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    return cache[name][0, head], ids[0].tolist()


def test_ea_pattern_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    k = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, 1.0]])
    got = an.ea_pattern(q, k, causal=True)
    expected = np.zeros((3, 3))
    for i in range(3):
        row = []
        for j in range(i + 1):
            dot = sum(float(q[i, d] * k[j, d]) for d in range(2)) / math.sqrt(2)
            row.append(dot**2 / (1 + dot**2))
        expected[i, : i + 1] = np.array(row) / sum(row)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert (got.triu(1) == 0).all()  # masked after the nonlinearity: exactly zero


def test_ea_pattern_antiparallel_equals_parallel():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    k = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    a = an.ea_pattern(q, k, causal=False)
    assert torch.allclose(a[:, 0], a[:, 1])  # (q.k)^2: the sign of the dot product is lost


def test_sink_scores_match_the_definition():
    pattern = torch.tensor([[1.0, 0, 0], [0.6, 0.4, 0], [0.5, 0.2, 0.3]])
    s = maps.sink_scores(pattern)
    np.testing.assert_allclose(s.numpy(), [(1 + 0.6 + 0.5) / 3, (0.4 + 0.2) / 2, 0.3 / 1])


def test_prompt_limits(tiny):
    with pytest.raises(InputError, match="empty"):
        an.check_prompt(tiny, "   ")
    with pytest.raises(InputError, match="at most 6000"):
        an.check_prompt(tiny, "a" * (an.MAX_CHARS + 1))
    with pytest.raises(InputError, match=f"at most {an.MAX_TOKENS}"):
        an.check_prompt(tiny, "a" * (an.MAX_TOKENS + 5))  # the tiny tokenizer is per character
    with pytest.raises(InputError, match="does not exist"):
        an.check_head(tiny, 7, 0)
    with pytest.raises(InputError, match="L<layer>.H<head>"):
        an.parse_heads(tiny, ["layer1head2"])
    with pytest.raises(InputError, match="at most"):
        an.parse_heads(tiny, ["L0.H0"] * (an.MAX_ABLATED + 1))


def test_dense_attention_figure_matches_transformer_lens(tiny):
    view = an.layer_view(tiny, PROMPT, 1)
    fig = attention_figure(view, 1, 2)
    ref, ids = _reference_pattern(tiny, PROMPT, 1, 2)
    z = np.array(fig.data[0].z, dtype=float)  # None (masked) -> nan
    n = len(ids)
    assert z.shape == (n, n) and fig.layout.meta["mode"] == "dense"
    lower = np.tril_indices(n)
    np.testing.assert_allclose(z[lower], ref.numpy()[lower], atol=1e-5)
    assert np.isnan(z[np.triu_indices(n, 1)]).all()
    want = [an.display_token(tiny.tokenizer.decode([i])) for i in ids]
    assert list(fig.layout.xaxis.ticktext) == want
    sinks = (ref.sum(0) / torch.arange(n, 0, -1)) > SINK_THRESHOLD
    sinks &= (ref > SINK_THRESHOLD).sum(0) >= maps.SINK_MIN_QUERIES
    assert fig.layout.meta["sinks"] == torch.nonzero(sinks).flatten().tolist()


def test_sink_outlines_hold_on_short_prompts():
    """Hand-built 14-token patterns: a previous-token head (each key looked at by one query;
    s_j alone flags late keys) outlines nothing; a first-token sink outlines key 0; a late key
    that one query attends to fully is not a sink."""
    n = 14
    prev = torch.zeros(n, n)
    prev[0, 0] = 1.0
    prev[torch.arange(1, n), torch.arange(0, n - 1)] = 1.0
    assert (maps.sink_scores(prev)[n // 2 :] > SINK_THRESHOLD).sum() >= 6  # the old rule
    assert maps.sink_keys(prev) == []
    first = torch.tril(torch.full((n, n), 0.2 / n))
    first[:, 0] += 0.8
    first /= first.sum(-1, keepdim=True)
    assert maps.sink_keys(first) == [0]
    late = torch.eye(n)
    assert maps.sink_keys(late) == []


def test_long_prompt_keeps_a_dense_map_labelled_on_the_axes(tiny):
    """150 tokens (> LABELLED_MAX_TOKENS): still every weight of the map, equal to
    transformer-lens' own pattern; the axes are categories "token @pos" in token order."""
    text = "abcdefghij" * 15
    view = an.layer_view(tiny, text, 0)
    fig = attention_figure(view, 0, 1)
    ref, ids = _reference_pattern(tiny, text, 0, 1)
    n = len(ids)
    assert n > maps.LABELLED_MAX_TOKENS and fig.layout.meta["mode"].startswith("dense")
    z = np.array(fig.data[0].z, dtype=float)
    lower = np.tril_indices(n)
    np.testing.assert_allclose(z[lower], ref.numpy()[lower], atol=6e-5)  # 4 decimals
    assert np.isnan(z[np.triu_indices(n, 1)]).all()
    assert list(fig.data[0].x) == [f"{t} @{i}" for i, t in enumerate(view.tokens)]
    assert fig.layout.xaxis.type == "category" and "%{x}" in fig.data[0].hovertemplate


def test_maps_refuse_more_than_the_dense_limit_and_mismatched_tokens():
    n = maps.DENSE_MAX_TOKENS + 1
    with pytest.raises(ValueError, match="long-document view"):
        maps.attention_map(torch.eye(n), ["t"] * n)
    with pytest.raises(ValueError, match="do not match"):
        maps.attention_map(torch.eye(4), ["t"] * 3)


def test_geometry_matches_direct_computation(tiny):
    view = an.layer_view(tiny, PROMPT, 0)
    hist, scatter, pca = geometry_figures(view, 0, 3)
    q, k = view.q[3], view.k[3]
    n = q.shape[0]
    cos = torch.nn.functional.cosine_similarity(q[:, None, :], k[None, :, :], dim=-1)
    pairs = np.tril_indices(n)
    assert len(scatter.data[0].x) == len(pairs[0])
    np.testing.assert_allclose(np.sort(scatter.data[0].x), np.sort(cos.numpy()[pairs]), atol=1e-5)
    for trace in hist.data:  # densities over [-1, 1] integrate to 1
        assert np.isclose(np.sum(trace.y) * (2 / 40), 1.0, atol=1e-5)
    assert len(pca.data[0].x) == n and len(pca.data[1].x) == n


def test_ablation_view_matches_ablate_context(tiny):
    ids = tiny.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    heads = [(0, 1), (1, 3)]
    with torch.no_grad():
        clean = tiny(ids)[0, -1]
        with ablate(tiny, heads, "zero"):
            zeroed = tiny(ids)[0, -1]
        with ablate(tiny, heads, "mean", reference=["hello world", "a b c d"]):
            meaned = tiny(ids)[0, -1]
    view = an.ablation_view(tiny, PROMPT, heads, "zero")
    torch.testing.assert_close(view.logits_clean, clean)
    torch.testing.assert_close(view.logits_ablated, zeroed)
    every_head = [(la, h) for la in (0, 1) for h in range(4)]
    means = head_means(tiny, ["hello world", "a b c d"], every_head)
    view = an.ablation_view(tiny, PROMPT, heads, "mean", means=means)
    torch.testing.assert_close(view.logits_ablated, meaned)
    with pytest.raises(InputError, match="same token length|must match"):
        an.ablation_view(tiny, PROMPT, heads, "resample", corrupted="short")


def test_merge_scores_and_run_folder(tiny, tmp_path):
    scan(tiny, tmp_path, detectors=["sink", "induction", "anchor"], progress=False)
    scores, manifest = read_run(tmp_path)
    assert len(scores) == 2 * 4 and manifest["model"]["name"]
    sink = pd.read_parquet(tmp_path / "detectors" / "sink.parquet")
    merged = scores.merge(sink, on=["layer", "head"])
    np.testing.assert_allclose(merged["sink"], merged["score"])
    assert {"anchor:mean_fai", "sink:hidden_sink_rate", "entropy"} <= set(scores.columns)
    assert score_columns(scores)[0] == "sink"
    with pytest.raises(InputError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="manifest.json"):
        read_run(tmp_path / "empty")
    with pytest.raises(InputError, match="no per-head table"):
        merge_scores(None, {})


def _wait(state: AppState) -> None:
    for _ in range(300):
        if not state.status().busy:
            return
        time.sleep(0.1)
    raise TimeoutError("load did not finish")


def test_state_reports_bad_model_and_run_without_raising(tmp_path):
    state = AppState()
    assert state.load_async("no-such-model")
    _wait(state)
    assert "unknown model 'no-such-model'" in state.status().error and state.session is None
    state.load("tiny", str(tmp_path / "missing"))
    assert "does not exist" in state.status().error
    state.load("tiny")
    assert state.status().error is None and state.session.name == "tiny"
    assert {"sink", "induction", "anchor:span", "entropy"} <= set(state.session.scores.columns)


def test_softmax_recomputation_equals_the_models_pattern(tiny):
    view = an.layer_view(tiny, PROMPT, 1)
    for h in range(view.pattern.shape[0]):
        torch.testing.assert_close(
            an.softmax_pattern(view.q[h], view.k[h]), view.pattern[h], atol=1e-5, rtol=1e-4
        )
    hist, _, _ = geometry_figures(view, 1, 0, scoring="dpa")
    assert "softmax" in hist.data[1].name and "EA" in hist.data[2].name


def test_display_options_hide_the_first_token_and_rescale():
    """Hiding the first token renormalises each row over the other keys (by hand); the log
    scale is log10 of the weight; percentiles rank the visible weights 0-100 in order."""
    display_weights = maps.display_weights

    a = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    visible = np.tril(np.ones((3, 3), dtype=bool))
    z, _, _, _ = display_weights(a, visible, "linear", hide_first=True)
    np.testing.assert_allclose(z[1], [0, 0.6, 0.4])
    np.testing.assert_allclose(z[2], [0, 0.25, 0.75])
    assert z[0].sum() == 0  # nothing left to renormalise
    z, bar, lo, hi = display_weights(a, visible, "log", hide_first=False)
    assert bar == "log10 weight" and z[1, 1] == pytest.approx(np.log10(0.3)) and z[0, 1] == lo
    z, _, _, _ = display_weights(a, visible, "percentile", hide_first=False)
    values, ranks = a.numpy()[visible], z[visible]
    assert ranks.min() == 0 and ranks.max() == 100
    assert (np.diff(ranks[np.argsort(values, kind="stable")]) >= 0).all()


def test_a_toy_model_is_scored_on_its_own_prompts():
    """A model folder that ships prompts.txt (a toy vocabulary, e.g. the planted sink model):
    the page's in-memory scores run the text detectors (sink, anchor, previous_token) on those
    prompts instead of refusing the English text, and equal the detectors run with
    ``inputs="model_prompts"``."""
    from circuits.planted import shipped_folder
    from dashboards.tables import compute_scores
    from interp.heads import get_detector
    from interp.models import load_model

    model = load_model(str(shipped_folder("sink")))
    scores = compute_scores(model)
    assert not {"sink", "anchor", "previous_token"} & set(scores.attrs["skipped"])
    expected = get_detector("sink").run(model, inputs="model_prompts").table
    np.testing.assert_allclose(scores["sink"].to_numpy(), expected.score.to_numpy())


def test_every_figure_starts_as_a_sentence_not_empty_axes():
    """Before a model is loaded each graph of the page holds one sentence and no axes."""
    from dash import dcc

    from dashboards.app import _layout
    from dashboards.style import BEFORE_LOAD

    def graphs(node):
        if isinstance(node, dcc.Graph):
            yield node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list | tuple) else [children]:
            if child is not None and hasattr(child, "to_plotly_json"):
                yield from graphs(child)

    found = list(graphs(_layout(None, None)))
    assert len(found) >= 8
    for g in found:
        layout = g.figure["layout"]
        assert layout["annotations"][0]["text"] == BEFORE_LOAD, g.id
        assert layout["xaxis"]["visible"] is False and not g.figure["data"]


def test_a_prompt_of_mostly_unknown_tokens_gets_a_note():
    from types import SimpleNamespace

    from dashboards.analysis import unknown_warning

    tok = SimpleNamespace(unk_token_id=0, pad_token_id=1, eos_token_id=2, bos_token_id=None,
                          unk_token="[UNK]", pad_token="[PAD]")  # fmt: skip
    note = unknown_warning(tok, [0, 0, 1, 5])
    assert "3 of this prompt's 4 tokens are [UNK]/[PAD]" in note and "prompts.txt" in note
    assert unknown_warning(tok, [0, 5, 6, 7]) == ""  # a few unknown words: no note
    same = SimpleNamespace(**{**vars(tok), "pad_token_id": 2})  # pad = eos: a real token here
    assert unknown_warning(same, [2, 2, 2, 5]) == ""


def test_hiding_the_first_token_drops_its_sink_outline_and_name():
    from dashboards.analysis import LayerView

    n = 12
    first = torch.tril(torch.full((n, n), 0.2 / n))
    first[:, 0] += 0.8
    first /= first.sum(-1, keepdim=True)
    view = LayerView([f"t{i}" for i in range(n)], list(range(n)), first[None], None, None)
    shown = attention_figure(view, 0, 0)
    assert shown.layout.meta["sinks"] == [0] and "t0@0" in shown.layout.title.text
    hidden = attention_figure(view, 0, 0, hide_first=True)
    assert hidden.layout.meta["sinks"] == [] and "t0@0" not in hidden.layout.title.text
    assert not hidden.layout.shapes  # no red outline around the hidden column


def test_the_mode_bar_stands_along_the_right_edge_not_over_titles():
    from dashboards.figures import empty_figure

    fig = empty_figure("x")  # any figure of the page
    assert fig.layout.template.layout.modebar.orientation == "v"


def test_one_forward_serves_every_layer_of_a_short_prompt(tiny):
    """A prompt of at most ALL_LAYERS_MAX_TOKENS runs once for all layers; each layer's view
    equals the single-layer run (same patterns, q and k), and switching layers runs nothing."""
    from dashboards.state import AppState

    views = an.all_layer_views(tiny, PROMPT)
    for la in range(int(tiny.cfg.n_layers)):
        one = an.layer_view(tiny, PROMPT, la)
        assert views[la].tokens == one.tokens and views[la].ids == one.ids
        for f in ("pattern", "q", "k"):
            torch.testing.assert_close(getattr(views[la], f), getattr(one, f))
    state = AppState(loader=lambda name: tiny)
    state.load("tiny")
    runs = []
    handle = tiny.blocks[0].attn.hook_pattern.register_forward_hook(lambda *a: runs.append(1))
    try:
        for la in [0, 1, 0, 1]:
            torch.testing.assert_close(state.layer_view(None, PROMPT, la).pattern,
                                       views[la].pattern)  # fmt: skip
    finally:
        handle.remove()
    assert len(runs) == 1


def test_on_error_turns_an_exception_into_the_callbacks_fallback_outputs():
    """One wrapper for every callback: a user error shows its text where ERROR stands, a
    callable fallback gets the text, an internal error names its type; no exception escapes."""
    from dashboards.style import ERROR, on_error
    from interp.errors import InputError

    @on_error([], ERROR)
    def two(fail):
        if fail == "user":
            raise InputError("type a prompt first")
        if fail == "bug":
            raise KeyError("x")
        return ["ok"], ""

    assert two(None) == (["ok"], "")
    assert two("user") == ([], "type a prompt first")
    assert two("bug") == ([], "internal error (KeyError): 'x'")

    @on_error(lambda text: f"figure saying {text}")
    def one():
        raise InputError("no model loaded yet")

    assert one() == "figure saying no model loaded yet"
    assert two.__name__ == "two"  # Dash sees the callback's own name and signature


def test_component_ids_are_the_declared_schema():
    """dashboards/ids.py is the one list of the page's component ids: the layout holds exactly
    those, every callback reads and writes only them, and no module spells an id as a bare
    string in a layout or callback."""
    import re
    from pathlib import Path

    from dashboards import ids
    from dashboards.app import create_app

    app = create_app(AppState())
    found: list[str] = []

    def walk(c):
        if isinstance(c, (list, tuple)):
            for x in c:
                walk(x)
            return
        if getattr(c, "id", None) is not None:  # a pattern id {"type": ...}: its type
            found.append(c.id["type"] if isinstance(c.id, dict) else c.id)
        children = getattr(c, "children", None)  # (a childless component has len 0)
        if children is not None:
            walk(children)

    walk(app.layout())
    assert len(found) == len(set(found)), "a component id is used twice"
    assert set(found) == ids.ALL
    import json

    used = set()
    for key, cb in app.callback_map.items():
        for dep in [*cb["inputs"], *cb.get("state", [])]:
            i = dep["id"]
            used.add(json.loads(i)["type"] if i.startswith("{") else i)
        used.update(re.findall(r"([A-Za-z0-9_-]+)\.[A-Za-z_]+", re.sub(r"@[0-9a-f]+", "", key)))
    assert used <= ids.ALL | {ids.TOK}, sorted(used - ids.ALL)
    assert len(used) > 50
    bare = re.compile(r'(?:Input|Output|State)\(\s*"|\bid="')
    for path in Path(ids.__file__).parent.glob("*.py"):
        assert not bare.search(path.read_text()), f"{path.name} spells an id as a string"
