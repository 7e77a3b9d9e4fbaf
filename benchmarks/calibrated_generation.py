"""Calibrated greedy generation: KV-cached (``cached_calibration_hooks``) vs recomputing the
whole sequence at every step (ACT's whole-sequence hooks) vs the plain model.

    interp calibrate smollm2-135m --dataset commonsense --out runs/calibration/commonsense.json
    python benchmarks/calibrated_generation.py runs/calibration/commonsense.json

Per prompt: whether the cached and recomputed continuations are equal and where they first
part, whether the calibration changed the text at all, and seconds of each. Prints a table;
writes ``benchmarks/results/calibrated_generation_<model>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PROMPTS = (
    "Q: Which one is heavier: the feather or the brick?\nA: The",
    "The history of the city begins in the twelfth century, when",
    "To make a cup of tea, first",
    "Q: Is a whale a fish?\nA:",
)


def main() -> None:
    from interp.calibration import CalibrationConfig, cached_calibration_hooks, calibrated
    from interp.generate import greedy_decode
    from interp.models import load_model
    from interp.report import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", type=Path)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--new-tokens", type=int, default=30)
    args = parser.parse_args()
    model = load_model(args.model)
    cfg = CalibrationConfig.load(args.calibration)
    rows = []

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return out, round(time.perf_counter() - t0, 2)

    for prompt in PROMPTS:
        ids = model.tokenizer(prompt)["input_ids"]
        n = args.new_tokens
        plain, t_plain = timed(lambda ids=ids, n=n: greedy_decode(model, ids, max_new_tokens=n))
        cached, t_cached = timed(
            lambda ids=ids, n=n: greedy_decode(
                model, ids, max_new_tokens=n, fwd_hooks=cached_calibration_hooks(model, cfg)
            )
        )
        with calibrated(model, cfg):
            full, t_full = timed(
                lambda ids=ids, n=n: greedy_decode(model, ids, max_new_tokens=n, use_cache=False)
            )
        pairs = list(zip(cached, full, strict=False))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        rows.append(
            {
                "prompt": prompt,
                "cached_equals_recompute": cached == full,
                "first_difference": first,
                "calibration_changed_text": full != plain,
                "seconds_plain": t_plain,
                "seconds_cached": t_cached,
                "seconds_recompute": t_full,
                "cached": model.tokenizer.decode(cached),
                "recompute": model.tokenizer.decode(full),
            }
        )
        r = rows[-1]
        print(
            f"{prompt[:40]!r:<44} equal {str(r['cached_equals_recompute']):<5} first diff "
            f"{first:>2}  changed {str(r['calibration_changed_text']):<5} s plain {t_plain:5.2f}"
            f" cached {t_cached:5.2f} recompute {t_full:5.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"calibrated_generation_{args.model}.json"
    write_json(
        {"model": args.model, "calibration": str(args.calibration), "n_heads": len(cfg.heads),
         "new_tokens": args.new_tokens, "rows": rows},
        out,
    )  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
