"""Quickstart: load the bundled SmolLM2-135M offline and look at per-head attention.

Run:  .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import interp


def main() -> None:
    model = interp.load_model("smollm2-135m")  # offline; first call converts the GGUF once
    print(interp.model_info(model))

    prompts = ["The cat sat on the mat.", "Alice gave Bob a book because Bob likes books."]
    run = interp.run_heads(model, prompts, hooks=["pattern", "rot_q", "rot_k"], layers=[0, 16])

    pattern = run.pattern(16)  # [batch, head, query, key]
    tokens = run.batch.str_tokens[1]
    n = run.lengths[1]
    head = int(pattern[1, :, 1:n].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).argmax())
    print(f"layer 16: head {head} attends most to the previous token; its rows:")
    for t in range(1, min(n, 8)):
        s = int(pattern[1, head, t, :n].argmax())
        print(f"  {tokens[t]!r:>12} -> {tokens[s]!r:<12} ({pattern[1, head, t, s]:.2f})")

    # keys are expanded per query head: 9 query heads share 3 kv heads (head h reads h // 3)
    print("rot_k shape:", tuple(run.get("rot_k", 0).shape))


if __name__ == "__main__":
    main()
