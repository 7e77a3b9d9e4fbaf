"""Quickstart: load the bundled SmolLM2-135M offline and look at per-head attention.

Run:  .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import interp


def main() -> dict:
    model = interp.load_model("smollm2-135m")  # offline; first call converts the GGUF once
    print(interp.model_info(model))

    prompts = ["The cat sat on the mat.", "Alice gave Bob a book because Bob likes books."]
    run = interp.run_heads(model, prompts, hooks=["pattern", "rot_q", "rot_k"], layers=[0, 16])

    pattern = run["pattern", 16]  # [batch, head, query, key]
    tokens = run.batch.str_tokens[1]
    n = run.lengths[1]
    # previous-token mass of each head: A[t, t-1] for t = 1 .. n-1, averaged over t
    prev = pattern[1, :, :n, :n].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # [head]
    head = int(prev.argmax())
    print(f"layer 16: head {head} attends most to the previous token ({prev[head]:.2f}); its rows:")
    rows = []
    for t in range(1, min(n, 8)):
        s = int(pattern[1, head, t, :n].argmax())
        rows.append((t, s))
        print(f"  {tokens[t]!r:>12} -> {tokens[s]!r:<12} ({pattern[1, head, t, s]:.2f})")

    # keys are expanded per query head: 9 query heads share 3 kv heads (head h reads h // 3)
    print("rot_k shape:", tuple(run["rot_k", 0].shape))
    return {"head": head, "prev_token_mass": prev.tolist(), "rows": rows}


if __name__ == "__main__":
    main()
