"""The per-prompt dashboard computations against independent references: heads ranked on the
prompt (dense patterns), direct logit attribution (the residual stream's decomposition), and
patching's input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboards.prompt_analysis import direct_logit_attribution, patching_view, rank_table
from interp.errors import InputError
from interp.heads.classic import pattern_scores, previous_token_pattern
from interp.inputs.text import all_patterns
from interp.tokens import tokenize

PROMPT = "the cat sat on the mat and the cat"


def test_rank_table_equals_dense_scores_on_the_prompt(tiny):
    """Each per-prompt score equals the dense computation on the prompt's own pattern."""
    table = rank_table(tiny, PROMPT)
    batch = tokenize(tiny, [PROMPT])
    patterns = all_patterns(tiny, batch)
    prev = pattern_scores(patterns, batch.tokens, batch.lengths, previous_token_pattern)
    np.testing.assert_allclose(table.previous_token, prev.reshape(-1).numpy(), atol=1e-5)
    s0 = patterns[:, 0, :, :, 0].mean(-1)  # s_0 = sum_i A[i, 0] / N
    np.testing.assert_allclose(table.sink, s0.reshape(-1).numpy(), atol=1e-5)
    assert len(table) == tiny.cfg.n_layers * tiny.cfg.n_heads
    assert "sink_score_0" not in table  # not twice


@torch.no_grad()
def test_direct_logit_attribution_decomposes_the_logit_difference(tiny):
    """The residual stream at the last position is embed + every attn_out + every mlp_out; with
    the final norm's scale frozen, their projections sum to the logit difference, and each
    layer's heads sum to its attn_out's projection."""
    ids = tiny.tokenizer(PROMPT)["input_ids"]
    target, foil = 5, 9
    dla = direct_logit_attribution(tiny, PROMPT, target, foil)
    keep = ("hook_embed", "hook_attn_out", "hook_mlp_out", "ln_final.hook_scale")
    logits, cache = tiny.run_with_cache(
        torch.tensor([ids]), names_filter=lambda n: n.endswith(keep)
    )
    last = len(ids) - 1
    w = tiny.ln_final.original_component.weight.float()
    d = w * (tiny.W_U[:, target] - tiny.W_U[:, foil]).float()
    scale = cache["ln_final.hook_scale"][0, last].float()

    def project(name: str) -> float:
        return float(cache[name][0, last].float() / scale @ d)

    total = project("hook_embed")
    for la in range(int(tiny.cfg.n_layers)):
        attn = project(f"blocks.{la}.hook_attn_out")
        assert dla[la].sum() == pytest.approx(attn, abs=1e-5)
        total += attn + project(f"blocks.{la}.hook_mlp_out")
    assert total == pytest.approx(float(logits[0, last, target] - logits[0, last, foil]), abs=1e-4)


@torch.no_grad()
def test_patching_view_checks_its_inputs_and_reports_the_clean_difference(tiny):
    with pytest.raises(InputError, match="must match"):
        patching_view(tiny, PROMPT, PROMPT + " again", None, None)
    with pytest.raises(InputError, match="corrupted prompt"):
        patching_view(tiny, PROMPT, "  ", None, None)
    with pytest.raises(InputError, match="same token"):
        patching_view(tiny, PROMPT, PROMPT.replace("mat", "hat"), 7, 7)
    corrupted = PROMPT.replace("mat", "hat")
    view = patching_view(tiny, PROMPT, corrupted, 5, 9)
    logits = tiny(tokenize(tiny, [PROMPT]).tokens)[0, -1]
    assert view.clean_diff == pytest.approx(float(logits[5] - logits[9]), abs=1e-5)
    assert view.effect.shape == view.dla.shape == (tiny.cfg.n_layers, tiny.cfg.n_heads)
    assert np.isfinite(view.effect).all()


def test_encoders_are_refused(minilm):
    with pytest.raises(InputError, match="causal"):
        direct_logit_attribution(minilm, PROMPT, 5, 9)


def test_small_multiples_pool_long_prompts_by_block_maximum():
    """Above SMALL_MAX tokens each cell is the largest weight of its block of tokens (checked by
    explicit loops); below it the cells are the weights themselves, one trace per head."""
    from dashboards.analysis import LayerView
    from dashboards.prompt_figures import layer_figure
    from interp.show.maps import SMALL_MAX

    gen = torch.Generator().manual_seed(0)
    n = SMALL_MAX * 2 + 5
    pattern = torch.rand(3, n, n, generator=gen).tril()
    view = LayerView([f"t{i}" for i in range(n)], list(range(n)), pattern, None, None)
    fig = layer_figure(view, 0, selected=1)
    assert len(fig.data) == 3 and fig.layout.meta["block"] == 3
    z = np.array(fig.data[2].z)
    block = 3
    for i in (0, 17, z.shape[0] - 1):
        for j in (0, 40, z.shape[1] - 1):
            cell = pattern[2, i * block : (i + 1) * block, j * block : (j + 1) * block]
            assert z[i, j] == pytest.approx(float(cell.max()))
    short = LayerView(["a", "b"], [0, 1], pattern[:, :2, :2], None, None)
    np.testing.assert_allclose(np.array(layer_figure(short, 0, None).data[0].z), pattern[0, :2, :2])


def test_head_card_reports_each_detector_and_the_keys_a_head_attends_to():
    """The card's rows are the detectors' own score / threshold / label for the head; its
    most-attended keys carry s_j recomputed here from dense patterns of the sink detector's
    text samples, and the context ends with that key's token."""
    from dashboards.head_card import detector_rows, sink_examples
    from dashboards.state import AppState
    from interp.inputs.text import text_samples

    state = AppState()
    state.load("tiny")
    session = state.session
    layer, head = 1, 2
    rows = detector_rows(session, layer, head).set_index("detector")
    for name, result in session.results.items():
        t = result.table
        r = t[(t.layer == layer) & (t["head"] == head)].iloc[0]
        assert rows.loc[name, "score"] == pytest.approx(float(r.score))
        assert rows.loc[name, "threshold"] == pytest.approx(float(r.threshold))
        assert bool(rows.loc[name, "label"]) == bool(r.score > r.threshold or r.label)
    _, top = sink_examples(session, layer, head)
    assert len(top) and (top.position > 0).all()
    batch = text_samples(session.model)
    patterns = all_patterns(session.model, batch)[layer, :, head]  # [b, q, k]
    for r in top.head(3).itertuples():
        n = batch.lengths[r.window]
        col = patterns[r.window, :n, r.position].sum() / (n - r.position)
        assert r.sink_score == pytest.approx(float(col), abs=1e-4)
        assert r.context.endswith("]") and r.token.strip() in r.context


def test_token_shades_are_the_row_or_column_and_hovers_name_the_top_links():
    from dashboards.token_view import hover_text, shades, token_spans

    a = torch.tensor([[1.0, 0.0, 0.0], [0.7, 0.3, 0.0], [0.2, 0.5, 0.3]])
    assert shades(a, 2, "attends to") == pytest.approx([0.2, 0.5, 0.3])
    assert shades(a, 0, "attended by") == pytest.approx([1.0, 0.7, 0.2])
    text = hover_text(a, ["x", "y", "z"], 1)
    assert "attends to: x@0 0.70, y@1 0.30" in text
    assert "attended by: z@2 0.50, y@1 0.30" in text
    spans = token_spans(a, ["x", "y", "z"], 2, "attends to")
    assert [s.id["index"] for s in spans] == [0, 1, 2]
    assert spans[2].style["border"].endswith("#c00")  # the selected token is outlined


def _rgb(color: str) -> tuple[int, ...]:
    return tuple(int(x) for x in color.strip("rgb()").split(","))


def test_signed_maps_share_one_colour_convention():
    """interp circuit's PNG (matplotlib) and the page's patching map (plotly) read the same
    name, and in both the positive end is red."""
    import matplotlib

    from dashboards.prompt_figures import _grid
    from interp.defaults import DIVERGING_COLORS

    png_top = matplotlib.colormaps[DIVERGING_COLORS](1.0)
    assert png_top[0] > png_top[2]  # red at +max in the PNG
    import plotly.graph_objects as go

    page = go.Figure(_grid(np.array([[-1.0, 2.0]]), "effect", "effect", symmetric=True))
    top = _rgb(page.data[0].colorscale[-1][1])
    assert top[0] > top[2]  # red at +max on the page


def test_difference_of_two_prompts_is_a_minus_b(tiny):
    from dashboards.analysis import layer_view
    from dashboards.compare_view import difference_figure

    a = layer_view(tiny, "the cat sat", 1)
    b = layer_view(tiny, "the dog sat", 1)
    fig = difference_figure(a, b, 1, 2)
    np.testing.assert_allclose(np.array(fig.data[0].z), (a.pattern[2] - b.pattern[2]).numpy())
    assert "c / d" in fig.layout.xaxis.ticktext  # differing tokens show both
    # the title's colour words match the scale: the top (A - B > 0) end is red, the bottom blue
    assert "red: more on A" in fig.layout.title.text
    scale = fig.data[0].colorscale
    top, bottom = _rgb(scale[-1][1]), _rgb(scale[0][1])
    assert top[0] > top[2] and bottom[2] > bottom[0]
    other = layer_view(tiny, "the cat sat down", 1)
    assert "equal lengths" in str(difference_figure(a, other, 1, 2).layout.annotations[0].text)


def test_url_state_round_trip():
    from dashboards.url_state import head_of, parse, query

    q = query("smollm2-135m", "", "a b & c?", 3, 7)
    args = parse(q)
    assert args == {"model": "smollm2-135m", "prompt": "a b & c?", "layer": "3", "head": "7"}
    assert head_of(args) == {"layer": 3, "head": 7}
    assert head_of(parse("?layer=x&head=1")) is None and parse(None) == {}


def test_exports_hold_what_the_page_shows():
    """The attention export is the head's pattern as transformer-lens' cache gives it, with the
    tokens; the score export is the session's per-head table."""
    import io
    import json

    import pandas as pd

    from dashboards.export import payload
    from dashboards.state import AppState

    state = AppState()
    state.load("tiny")
    model = state.session.model
    out = payload(state, None, "export-attention", PROMPT, 1, 2)
    data = json.loads(out["content"])
    ids = model.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    name = "blocks.1.attn.hook_pattern"
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name)
    np.testing.assert_allclose(np.array(data["pattern"]), cache[name][0, 2].numpy(), atol=1e-6)
    assert len(data["tokens"]) == ids.shape[1] and out["filename"] == "L1.H2_attention.json"
    scores = payload(state, None, "export-scores", PROMPT, 1, 2)
    table = pd.read_csv(io.StringIO(scores["content"]))
    assert len(table) == len(state.session.scores)
    assert list(table.columns) == list(state.session.scores.columns)


def test_head_card_shows_causal_scores_beside_attention_scores(tmp_path):
    """A run folder with a causal role score: the card lists it as kind "causal" with its
    measured (exact) effect, next to the attention detectors' rows."""
    from dashboards.head_card import detector_rows
    from dashboards.state import AppState
    from interp.heads import get_detector

    state = AppState()
    state.load("tiny")
    session = state.session
    result = get_detector("sink_need").run(session.model, exact_top=3)
    session.results["sink_need"] = result
    t = result.table
    for layer, head in [(0, 0), (1, 3)]:
        rows = detector_rows(session, layer, head).set_index("detector")
        r = t[(t.layer == layer) & (t["head"] == head)].iloc[0]
        assert rows.loc["sink_need", "kind"] == "causal"
        assert rows.loc["sink_need", "score"] == pytest.approx(float(r.score))
        if r.checked:
            assert rows.loc["sink_need", "exact"] == pytest.approx(float(r.exact))
        else:
            assert np.isnan(rows.loc["sink_need", "exact"])
        assert set(rows.drop(index="sink_need").kind) == {"attention"}


def test_ranking_draws_the_detectors_label_threshold():
    import pandas as pd

    from dashboards.prompt_figures import ranked_figure
    from interp.defaults import SINK_HEAD_THRESHOLD

    table = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 1, 0], "sink": [0.9, 0.1, 0.5],
                          "entropy": [1.0, 2.0, 0.5]})  # fmt: skip
    fig = ranked_figure(table, "sink")
    assert [s.x0 for s in fig.layout.shapes] == [SINK_HEAD_THRESHOLD]
    assert any("label threshold 0.3" in a.text for a in fig.layout.annotations)
    assert not ranked_figure(table, "entropy").layout.shapes  # a statistic has no label


def test_head_card_lists_hidden_sinks_seen_by_enough_queries_once():
    """A key near the end of a window is seen by few queries, so s_j > 0.1 there is chance:
    the card lists only keys seen by >= HIDDEN_SINK_MIN_QUERIES queries, says the rule, and
    does not repeat a hidden sink among the most-attended keys."""
    import pandas as pd

    from dashboards.head_card import sink_examples
    from interp.defaults import HIDDEN_SINK_MIN_QUERIES as MIN_Q

    n = 64
    keys = pd.DataFrame({"layer": 0, "head": 0, "window": 0, "position": range(n),
                         "token": [f"t{j}" for j in range(n)], "sink_score": 0.01,
                         "n_queries": [n - j for j in range(n)]})  # fmt: skip
    keys.loc[[5, 62], "sink_score"] = [0.3, 0.6]  # a real hidden sink and an end-of-window one
    keys.loc[[7, 63], "sink_score"] = [0.05, 0.9]
    hidden = keys[keys.sink_score > 0.1].copy()

    class Result:
        extra = {"key_scores": keys, "hidden_sinks": hidden}

    class FakeSession:
        results = {"sink": Result()}

    shown, top = sink_examples(FakeSession(), 0, 0)
    assert shown.position.tolist() == [5]  # 62 (2 queries) is not a sink
    assert (top.n_queries >= MIN_Q).all() and 5 not in top.position.tolist()
    assert top.position.iloc[0] == 7  # 63 and 62 left out (few queries), 5 listed above
    assert MIN_Q < n - 5


def test_exact_patching_equals_activation_patching_on_the_largest_estimates(tiny):
    """The page's first answer is attribution patching (every head from one backward pass);
    'Exact' then runs the real intervention on the heads with the largest estimates, and those
    values equal interp.ablation.patching.activation_patching (run independently here)."""
    from dashboards.prompt_analysis import exact_patching
    from interp.ablation.attribution import z_attribution
    from interp.ablation.patching import activation_patching

    corrupted = PROMPT.replace("mat", "hat")
    view = patching_view(tiny, PROMPT, corrupted, 5, 9)
    assert np.isnan(view.exact).all() and np.isfinite(view.estimate).all()
    clean, dirty = tokenize(tiny, [PROMPT]), tokenize(tiny, [corrupted])

    def metric(out):
        return out[0, -1, 5] - out[0, -1, 9]

    att = z_attribution(tiny, clean.tokens, dirty.tokens, None, metric)
    scale = view.corrupted_diff - view.clean_diff
    np.testing.assert_allclose(view.estimate, att.estimate.numpy() / scale, rtol=1e-5, atol=1e-6)

    steps = []
    exact_patching(tiny, view, 3, lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    with torch.no_grad():
        ref = activation_patching(tiny, clean, dirty, lambda o: float(metric(o)), progress=False)
    checked = np.argwhere(~np.isnan(view.exact))
    want = {tuple(h) for h in np.argwhere(np.abs(view.estimate) >= np.sort(np.abs(
        view.estimate), axis=None)[-3])}  # fmt: skip
    assert {tuple(h) for h in checked} == want
    for la, h in checked:
        assert view.exact[la, h] == pytest.approx(float(ref[la, h]), abs=1e-5)
    exact_patching(tiny, view, 2)  # the next two, not the same three again
    assert (~np.isnan(view.exact)).sum() == 5
    np.testing.assert_allclose(
        view.effect[~np.isnan(view.exact)], view.exact[~np.isnan(view.exact)]
    )
