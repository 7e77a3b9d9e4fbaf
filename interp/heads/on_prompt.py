"""Per-head measures of ONE prompt scored on itself, for every per-prompt detector: what a sweep
records per prompt and what the dashboard ranks heads by on the user's prompt.

``head_stats`` (entropy, first_token_mass, prev_token_mass, mean_distance as means over queries
t >= 1, and sink_score_0 = s_0 = sum_i A[i,0] / N) and, for every registered detector that
declares ``per_prompt``, its own ``prompt_pairs`` / ``prompt_scores`` (the sink detector's s_0 and
hidden sinks, the classic detectors' sum(A * D) / sum(A) with D on the prompt's own tokens, NaN
where D is empty). They come from streaming attention statistics and exact sparse pattern
entries, never from an n x n pattern, so a prompt at the model's full context costs one forward
pass and O(n) memory per layer.
"""

from __future__ import annotations

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.heads import get_detector
from interp.heads.classic import previous_token_pairs
from interp.models.info import is_causal
from interp.stats.capture import for_each_layer, layer_sliding_window
from interp.stats.heads import SCORES
from interp.stats.streaming import attention_stats, pair_weights

STATS = SCORES  # the head statistics of interp.stats.heads, per prompt


@torch.no_grad()
def prompt_measures(
    model: TransformerBridge, ids: list[int], wanted: set[str]
) -> dict[str, torch.Tensor]:
    """The measures of the prompt ``ids`` that ``wanted`` (``"head_stats"`` and detector names)
    needs, as [layer, head] tensors keyed ``"entropy"``, ... and ``"<detector>.<column>"``."""
    n = len(ids)
    tokens = torch.tensor(ids)
    causal = is_causal(model)
    detectors = {d: get_detector(d) for d in wanted if d != "head_stats"}
    pairs = {d: det.prompt_pairs(tokens) for d, det in detectors.items()}
    if "head_stats" in wanted and "previous_token" not in pairs:  # its prev_token_mass
        pairs["head_stats"] = previous_token_pairs(tokens)
    pairs = {d: p for d, p in pairs.items() if p is not None and p[0].numel()}
    per_layer: dict[int, dict[str, torch.Tensor]] = {}

    def record(layer: int, q: torch.Tensor, k: torch.Tensor, scaling) -> None:
        sliding = layer_sliding_window()
        st = attention_stats(
            q, k, causal=causal, scale=scaling, sink_tokens=1, sliding_window=sliding
        )
        mass = {
            d: pair_weights(q, k, st.lse, t, j, scale=scaling, sliding_window=sliding)[0].sum(-1)
            for d, (t, j) in pairs.items()
        }
        out: dict[str, torch.Tensor] = {}
        if "head_stats" in wanted:
            zero = st.sink_score[0, :, 0] * 0
            out.update({
                "entropy": st.entropy[0, :, 1:].mean(-1),
                "first_token_mass": st.sink_mass[0, :, 1:].mean(-1),
                "prev_token_mass": mass.get("previous_token", mass.get("head_stats", zero))
                / max(n - 1, 1),
                "mean_distance": st.mean_distance[0, :, 1:].mean(-1),
                "sink_score_0": st.sink_score[0, :, 0],
            })  # fmt: skip
        for d, det in detectors.items():  # each detector's own per-prompt scoring
            for col, value in det.prompt_scores(st, mass.get(d)).items():
                out[f"{d}.{col}"] = value
        per_layer[layer] = {
            key: (v.float() if v.is_floating_point() else v).cpu() for key, v in out.items()
        }

    for_each_layer(model, ids, record)
    return {key: torch.stack([per_layer[la][key] for la in sorted(per_layer)])
            for key in per_layer[0]}  # fmt: skip
