"""Find retrieval, sink and induction heads of SmolLM2-135M and check them causally.

Run: .venv/bin/python examples/detect_heads.py   (about 2 min for the detectors on a 2-core CPU,
plus ~1 min for the induction validation; the retrieval validation takes ~6 min, see below)
"""

from pathlib import Path

import interp
from interp.heads import get_detector
from interp.heads.anchor import anchor_tokens
from interp.runs.validate import validate


def main(model_name: str = "smollm2-135m", with_retrieval: bool = True, k: int = 14) -> dict:
    """Run the example; returns what it printed, for tests (tests/test_examples.py)."""
    model = interp.load_model(model_name)

    # 1. Detectors: each returns a per-head table (score, threshold, label, ...).
    induction = get_detector("induction").run(model)
    sink = get_detector("sink").run(model)
    print("induction heads:", induction.labelled())
    print(
        f"sink metric (Gu et al.): {sink.inputs['sink_metric']:.1%}, "
        f"heads with mean s_0 > 0.3: {sink.inputs['sink_head_fraction']:.1%}"
    )
    print(sink.extra["hidden_sinks"].token.value_counts().head())  # which tokens are hidden sinks
    if with_retrieval:  # ~2 min: needle-in-a-haystack tests, resumable under runs/example/
        retrieval = get_detector("retrieval").run(model, workdir=Path("runs/example/retrieval"))
        print("retrieval heads:", retrieval.labelled())

    # 2. Causal check: mask the top-k induction heads vs k random heads (5 draws each).
    v = validate(model, induction, k=k, n_draws=5)
    print(v.table[["condition", "draw", "induction_loss", "drop"]])
    # validate(model, retrieval) does the same with needle accuracy (slower: it decodes answers).

    # 3. Preplan and anchor tokens of a text.
    text = "First, 12 times 7 is 84. Then add 16 to get 100. So the answer is 100."
    tokens = anchor_tokens(model, text)
    print(tokens[tokens.anchor][["position", "token", "fai"]])
    return {"induction": induction, "sink": sink, "validation": v, "anchors": tokens}


if __name__ == "__main__":
    main()
