"""The page's own help: what each view shows, the definitions and thresholds behind it."""

from __future__ import annotations

from dash import dcc, html

from dashboards import ids
from interp import defaults

HELP = f"""
**Reading order.** Sections are numbered top to bottom. Load a model (and optionally a run
folder of `interp scan`), type a prompt, press Analyse, then pick a head in the atlas (1), the
scatter (2) or the drop-downs; every view follows the selected head. The address bar always
links to what you see (model, run, prompt, head): copy it to share or bookmark a view.

**Scores (atlas, scatter, head card)** come from the detectors' own inputs, not from your prompt:
sink = mean s_0 on 64-token text samples (s_j = sum_i A[i,j] / (N - j), the mean attention key j
receives; label s_0 > {defaults.SINK_HEAD_THRESHOLD}); previous-token, duplicate-token, induction
= sum(A * D) / sum(A) with D the pattern's 0/1 mask, on text windows or repeated random tokens
(label > {defaults.CLASSIC_THRESHOLD}); retrieval = the needle-in-a-haystack copy-paste
score (label > {defaults.RETRIEVAL_THRESHOLD}, needs a run folder); anchor: span, WAAD
(W = {defaults.WAAD_WINDOW}), FAI. **Heads ranked on this prompt (8)** computes the same
formulas on your prompt's own tokens.

**Attention map (3).** Rows are queries, columns keys; outlined in red: sink keys, s_j >
{defaults.SINK_THRESHOLD} with at least 4 queries giving more than {defaults.SINK_THRESHOLD} (on a
short prompt one query looking at a late key would pass the score alone). Hide the first token to
see the rest of a head that mostly attends to it (rows renormalised); log or percentile colors
spread small weights. Every weight is drawn up to the page's 512 tokens; above 128 tokens the
axes name as many tokens as fit (zoom in for the rest; hover names both tokens).

**Ablation (6).** zero: the head's output (hook_z) is 0; mean: its mean over the bundled prompts;
resample: taken from the corrupted prompt (same token length); uniform: the head attends
uniformly over its visible keys. **Patching (9)** writes one head's output from a corrupted
prompt into your prompt's run (noising) and reports the normalised change of logit(target) -
logit(foil); direct logit attribution is each head's direct contribution to that difference.
Definitions and sources: docs/methods.md in the repository.
"""


def components() -> list:
    return [
        html.Details(
            [html.Summary("How to read this page"), dcc.Markdown(HELP)],
            id=ids.HELP,
            style={"margin": "6px 0"},
        )
    ]
