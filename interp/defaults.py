"""Every threshold, window and size the methods use, in one place, with its source.

Modules import these names (never a literal), so a change here reaches every detector, the
sweep, the dashboard and the calibration alike, and the fingerprints of cached tables
(``interp.runs.store``) include them. Definitions: docs/methods.md.
"""

from __future__ import annotations

# Attention sinks (docs/methods.md section 2)
SINK_THRESHOLD = 0.1  # ACT: key j is a sink token of a head when s_j > 0.1
SINK_HEAD_THRESHOLD = 0.3  # Gu et al.: alpha_0 > 0.3 (per sample); our per-head label uses it too
CALIBRATION_BETA = 0.4  # ACT: attention on calibrated sinks is scaled by beta
SINK_SAMPLE_TOKENS = 64  # Gu et al.: 64-token text samples

# Anchor heads (section 3)
WAAD_WINDOW = 10  # W of WAAD
FAI_WINDOW = (10, 100)  # FAI averages queries t in [s + 10, s + H], H = 100 (50 in the paper's v1)
GROUP_FRACTION = 0.3  # local = lowest 30 % span, global = highest 30 %
TOKEN_FRACTION = 0.4  # preplan / anchor tokens = top 40 %

# Retrieval heads (section 1)
RETRIEVAL_THRESHOLD = 0.1  # Wu et al.: retrieval head when the score > 0.1
RECALL_THRESHOLD = 0.5  # official: a needle test counts when ROUGE-1 recall > 0.5
MAX_NEW_TOKENS = 50  # official decode length of a needle test

# Classic pattern heads (section 6): label when the score exceeds this (our choice)
CLASSIC_THRESHOLD = 0.4

# Discrete-code SAE (section 4): the official code trains on 10 examples, codes on all
SAE_EXAMPLES = 10

# Above this many tokens per window, detectors use the streaming statistics (no n x n pattern)
LONG_INPUT = 512

# Causal role scores (section 11, ours): a head "has" the role when hiding / masking / patching it
# raises the role's loss by more than this many nats (the planted no_bos negative's cost)
CAUSAL_THRESHOLD = 0.01
ATTRIBUTION_STEPS = 1  # 1: plain AtP at the clean run; > 1: integrated gradients (section 11)
CAUSAL_EXACT_TOP = 40  # heads whose attribution estimate is checked by the exact intervention
ANCHOR_NEAR = 16  # anchor effect: the last tokens of a window stay; the rest is "far" context
# One colour convention for signed maps (patching effects, A - B differences), in every PNG
# (matplotlib) and page (plotly), both of which read this name: red = positive, blue = negative
DIVERGING_COLORS = "RdBu_r"
# The head card lists a key as a hidden sink only when at least this many queries see it: s_j
# divides by N - j, so the last keys of a window (seen by 1-7 queries) reach 0.1 by chance
HIDDEN_SINK_MIN_QUERIES = 8
