"""Find retrieval, sink and induction heads of SmolLM2-135M and check them causally.

Run: .venv/bin/python examples/detect_heads.py   (about 2 min for the detectors on a 2-core CPU,
plus ~1 min for the induction validation; the retrieval validation takes ~6 min, see below)
"""

from pathlib import Path

import interp
from interp.heads import get_detector
from interp.heads.anchor import anchor_tokens
from interp.heads.validate import validate

model = interp.load_model("smollm2-135m")

# 1. Detectors: each returns a per-head table (score, threshold, label, ...).
induction = get_detector("induction").run(model)
sink = get_detector("sink").run(model)
retrieval = get_detector("retrieval").run(model, workdir=Path("runs/example/retrieval"))
print("induction heads:", induction.labelled())
print(
    f"sink metric (Gu et al.): {sink.inputs['sink_metric']:.1%}, "
    f"heads with mean s_0 > 0.3: {sink.inputs['sink_head_fraction']:.1%}"
)
print("retrieval heads:", retrieval.labelled())
print(sink.extra["hidden_sinks"].token.value_counts().head())  # which tokens are hidden sinks

# 2. Causal check: mask the top-14 induction heads vs 14 random heads (5 draws each).
v = validate(model, induction, k=14, n_draws=5)
print(v.table[["condition", "draw", "induction_loss", "drop"]])
# validate(model, retrieval) does the same with needle accuracy (slower: it decodes answers).

# 3. Preplan and anchor tokens of a text.
text = "First, 12 times 7 is 84. Then add 16 to get 100. So the answer is 100."
tokens = anchor_tokens(model, text)
print(tokens[tokens.anchor][["position", "token", "fai"]])
