"""Benchmark: server time of switching layer or head on the page's attention map (SmolLM2-135M,
a 128-token prompt), before and after, in one run.

Before (``--before REV``, default the commit before the change): each layer switched to runs
the model up to that layer (``analysis.layer_view``) and the map is the per-cell-hover heatmap
of REV's ``interp/show/maps.py``. After: one forward serves every layer
(``analysis.all_layer_views``, what ``AppState.layer_view`` caches for prompts of up to 128
tokens) and the map is the lean float32 heatmap. Each switch is timed to the JSON Dash sends
(``fig.to_json()``); a head switch reuses the layer's run in both. Prints a table and writes
benchmarks/results/dashboard_switch_smollm2-135m.json.

Usage: .venv/bin/python benchmarks/dashboard_switch.py [--before REV] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from revision import module_at  # benchmarks/ (this script's folder)

import interp
from dashboards import analysis
from interp.report import write_json
from interp.show import maps

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]
LAYERS = [0, 7, 15, 22, 29, 3, 11, 26]  # the order a user clicks through


def _prompt(model, n: int) -> str:
    text = (ROOT / "interp" / "data" / "haystack.txt").read_text()
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    return model.tokenizer.decode(ids)


def _switches(model, prompt: str, render, all_layers: bool) -> dict:
    """Seconds of each layer switch and each head switch (within the last layer), and the
    JSON size of one map."""
    views: dict[int, analysis.LayerView] = {}
    layer_s, head_s, size = [], [], 0
    for la in LAYERS:
        t0 = time.perf_counter()
        if la not in views:
            if all_layers:
                views.update(enumerate(analysis.all_layer_views(model, prompt)))
            else:
                views[la] = analysis.layer_view(model, prompt, la)
        v = views[la]
        size = len(render(v.pattern[0], v.tokens, name=f"L{la}.H0").to_json())
        layer_s.append(time.perf_counter() - t0)
    for h in range(1, int(model.cfg.n_heads)):
        t0 = time.perf_counter()
        render(views[LAYERS[-1]].pattern[h], views[LAYERS[-1]].tokens, name=f"H{h}").to_json()
        head_s.append(time.perf_counter() - t0)
    return {
        "layer_switch_s": layer_s,
        "layer_switch_mean_s": statistics.mean(layer_s),
        "layer_switch_max_s": max(layer_s),
        "head_switch_mean_s": statistics.mean(head_s),
        "map_json_kb": size / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="60625bf", help="revision of the 'before' map")
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    model = interp.load_model("smollm2-135m")
    prompt = _prompt(model, args.tokens)
    old = module_at(args.before, "interp/show/maps.py", "maps_before")
    n = len(analysis.check_prompt(model, prompt))
    analysis.layer_view(model, prompt, 0)  # warm-up
    rows = {
        "before": _switches(model, prompt, old.attention_map, all_layers=False),
        "after": _switches(model, prompt, maps.attention_map, all_layers=True),
    }
    print(f"{n} tokens; layers clicked in the order {LAYERS}")
    for name, r in rows.items():
        print(f"  {name:6s} layer switch mean {r['layer_switch_mean_s']:.3f} s "
              f"(max {r['layer_switch_max_s']:.3f}, the first includes the forward), head "
              f"switch {r['head_switch_mean_s']:.3f} s, map {r['map_json_kb']:.0f} KB")  # fmt: skip
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "tokens": n, "before": args.before}  # fmt: skip
    out = RESULTS / "dashboard_switch_smollm2-135m.json"
    write_json({"meta": meta, **rows}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
