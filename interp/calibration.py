"""Training-free attention-sink calibration (ACT: Yu et al., ICML 2024, arXiv 2406.15765;
official code GATECH-EIC/ACT models/llama_modelling_aug.py; docs/methods.md section 2).

For a calibrated head on an input of N tokens: s_j = sum_i A[i,j] / (N - j); the sink set is
{j : s_j > 0.1} minus its first element (ACT's ``indices[1:]``: the first sink, normally token 0,
is never calibrated). Per query row: A'[i,j] = beta * A[i,j] for j in the set (beta = 0.4) and the
freed mass (1 - beta) * sum_{j in set} A[i,j] goes to the other keys in proportion to their
attention, so rows still sum to 1 (a row whose attention is all on calibrated sinks has nowhere to
put the mass and stays unchanged; ACT's code only has that case for row 0 and resets it there).
The transform is a hook on the chosen heads' ``hook_pattern``; other heads are untouched.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.uniform import check_heads
from interp.defaults import CALIBRATION_BETA, SINK_THRESHOLD
from interp.errors import InputError
from interp.hook_names import act_name


def calibrate_pattern(
    a: Float[Tensor, "batch head query key"],
    lengths: list[int] | None = None,
    beta: float = CALIBRATION_BETA,
    threshold: float = SINK_THRESHOLD,
    prompt_lengths: list[int] | None = None,
) -> Float[Tensor, "batch head query key"]:
    """ACT's transform of post-softmax attention (causal), every head of ``a``.

    ``prompt_lengths``: the sink set of example i is computed on its first ``prompt_lengths[i]``
    rows and keys only (the prompt) and applied to every row up to ``lengths[i]``, so every
    choice appended to one prompt is scored under the same calibration (the prompt rows of a
    causal model do not see the choice, so this equals computing the set on the prompt alone)."""
    return _calibrate(a, lengths, beta, threshold, prompt_lengths)[0]


def _calibrate(
    a: Tensor,
    lengths: list[int] | None,
    beta: float,
    threshold: float,
    prompt_lengths: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """(calibrated pattern, [batch, head] bool: whether the head calibrated any key), the whole
    batch at once: per example i, s_j over its first ``prompt_lengths[i]`` rows and keys, the
    transform on its first ``lengths[i]`` rows and keys; padding untouched."""
    b, h, n, _ = a.shape
    lengths = lengths or [n] * b
    prompt_lengths = prompt_lengths or lengths
    for length, p in zip(lengths, prompt_lengths, strict=True):
        if not 0 < p <= length <= n:
            raise InputError(f"prompt length {p} must be in 1 .. {length} (the sequence length)")
    dev = a.device
    idx = torch.arange(n, device=dev)
    total = torch.tensor(lengths, device=dev)[:, None]  # [b, 1]
    prompt = torch.tensor(prompt_lengths, device=dev)[:, None]
    in_prompt = idx[None, :] < prompt  # [b, n]: rows and keys of the prompt
    s = prompt_sink_scores(a, prompt_lengths).to(a.dtype)
    sink = (s > threshold) & in_prompt[:, None, :]
    first = torch.where(sink.any(-1), sink.float().argmax(-1), -1)  # ACT's indices[1:]
    sink &= idx[None, None, :] != first[..., None]
    real = idx[None, :] < total  # [b, n]
    region = real[:, None, :, None] & real[:, None, None, :]
    return torch.where(region, move_sink_mass(a, sink, beta), a), sink.any(-1)


def prompt_sink_scores(a: Tensor, prompt_lengths: list[int]) -> Tensor:
    """[batch, head, key] s_j of each example over its prompt's rows and keys (0 past the
    prompt), the whole batch at once."""
    n = a.shape[-1]
    idx = torch.arange(n, device=a.device)
    prompt = torch.tensor(prompt_lengths, device=a.device)[:, None]
    in_prompt = idx[None, :] < prompt
    col = (a.float() * in_prompt[:, None, :, None]).sum(-2)
    s = col / (prompt - idx[None, :]).clamp_min(1)[:, None, :]
    return torch.where(in_prompt[:, None, :], s, torch.zeros_like(s))


def calibrated_sinks(s: Float[Tensor, "head key"], threshold: float) -> Tensor:
    """[head, key] bool: the keys ACT calibrates, s_j > threshold minus each head's first sink
    (ACT's ``indices[1:]``)."""
    sink = s > threshold
    first = torch.where(sink.any(-1), sink.float().argmax(-1), -1)  # first sink per head
    idx = torch.arange(s.shape[-1], device=s.device)
    return sink & (idx[None, :] != first[:, None])


def move_sink_mass(
    x: Float[Tensor, "*batch head query key"], sink: Tensor, beta: float
) -> Float[Tensor, "*batch head query key"]:
    """Each row keeps ``beta`` of its attention on the ``sink`` keys ([*batch, head, key]) and
    gives the rest to the other keys in proportion to their attention; a row with nowhere to
    put it (all on calibrated sinks) stays as it was."""
    sink_rows = sink.unsqueeze(-2).expand_as(x)
    on_sinks = torch.where(sink_rows, x, torch.zeros_like(x))
    others = x - on_sinks
    free = (1 - beta) * on_sinks.sum(-1, keepdim=True)
    denom = others.sum(-1, keepdim=True)
    new = beta * on_sinks + others + free * others / denom.clamp_min(1e-30)
    return torch.where(denom > 0, new, x)


@dataclass
class CalibrationConfig:
    """Which heads to calibrate and how; saved as JSON."""

    model: str
    heads: list[tuple[int, int]]
    beta: float = CALIBRATION_BETA
    threshold: float = SINK_THRESHOLD
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        from interp.report import write_json

        d = asdict(self)
        d["heads"] = [list(h) for h in self.heads]
        return write_json(d, Path(path))

    @classmethod
    def load(cls, path: Path) -> CalibrationConfig:
        from interp.checks import read_text

        path = Path(path)
        text = read_text(path, "calibration config")
        try:
            d = json.loads(text)
            heads = [(int(la), int(h)) for la, h in d["heads"]]
            beta, threshold = float(d["beta"]), float(d["threshold"])
            config = cls(d["model"], heads, beta, threshold, d["provenance"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path} is not a calibration config ({e})") from e
        if not 0 <= beta <= 1:  # also false for NaN
            raise InputError(f"{path}: beta must be in [0, 1] (share kept on sinks), got {beta}")
        if not 0 < threshold < 1:
            raise InputError(
                f"{path}: threshold must be in (0, 1) (sink: s_j > threshold), got {threshold}"
            )
        return config


def _padded_keys(pattern: Tensor) -> bool:
    """Whether some key column gets exactly zero attention from every query of every head: a
    padded key (a real key j is always seen by query j with a positive weight)."""
    return bool((pattern.amax(dim=(1, 2)) == 0).any())


def calibration_hooks(
    model: TransformerBridge,
    config: CalibrationConfig,
    lengths: list[int] | None = None,
    *,
    prompt_lengths: list[int] | None = None,
    on_calibrated: Callable[[int, list[int], Tensor], None] | None = None,
) -> list[tuple[str, Callable]]:
    """``hook_pattern`` hooks that calibrate exactly ``config.heads``.

    ``lengths``: the real length of every prompt of a right-padded batch (``TokenBatch.lengths``);
    None for unpadded inputs. Sink scores divide by the number of queries that see a key, so a
    padded batch needs its lengths: without them the hook raises instead of computing with the
    padded length. ``prompt_lengths``: compute each sink set on the prompt's rows only (see
    ``calibrate_pattern``). ``on_calibrated(layer, heads, touched)`` is called in each calibrated
    layer with ``touched`` [batch, len(heads)] bool: whether that head calibrated any key of that
    input (a head with no hidden sink on an input leaves it unchanged)."""
    by_layer: dict[int, list[int]] = defaultdict(list)
    for la, h in check_heads(model, config.heads):
        by_layer[la].append(h)

    def make(layer: int, heads: list[int]) -> Callable:
        idx = sorted(set(heads))

        def hook(pattern: Tensor, hook) -> Tensor:
            if pattern.shape[-2] != pattern.shape[-1]:
                raise InputError(
                    "ACT calibration needs the attention of the whole sequence (sink scores are "
                    "column means over every query), but this forward sees "
                    f"{pattern.shape[-2]} query row(s) over {pattern.shape[-1]} keys: a KV-cached "
                    "decoding step. Run the calibrated model without a KV cache (recompute the "
                    "full sequence each step, as `interp generate` does)."
                )
            if lengths is None and _padded_keys(pattern):
                raise InputError(
                    "this batch is padded (some keys get no attention at all): pass the prompts' "
                    "real lengths, calibration_hooks(model, config, lengths=batch.lengths) or "
                    "calibrated(model, config, lengths=batch.lengths)"
                )
            for what, given in (("lengths", lengths), ("prompt lengths", prompt_lengths)):
                if given is not None and len(given) != pattern.shape[0]:
                    raise InputError(
                        f"{len(given)} {what} given for a batch of {pattern.shape[0]} prompts"
                    )
            out = pattern.clone()
            out[:, idx], touched = _calibrate(
                pattern[:, idx], lengths, config.beta, config.threshold, prompt_lengths
            )
            if on_calibrated is not None:
                on_calibrated(layer, idx, touched)
            return out

        return hook

    return [(act_name("pattern", la), make(la, hs)) for la, hs in by_layer.items()]


def cached_calibration_hooks(
    model: TransformerBridge, config: CalibrationConfig
) -> list[tuple[str, Callable]]:
    """Calibration for KV-cached decoding of one sequence (``interp.generate.greedy_decode``'s
    ``fwd_hooks``; a fresh set per generation).

    The prompt pass (every query row) is calibrated exactly as ``calibration_hooks`` does. A
    decoding step sees only its new query row(s); each head keeps the column sums of every row
    it has computed so far (uncalibrated), so the new row is calibrated with s_j = (column sum
    of key j over all rows so far) / (N - j): the sink set ACT would compute on the whole
    sequence up to this token. What differs from recomputing the sequence at every step is that
    earlier rows keep the sink set of their own time (the computation stays causal, so the KV
    cache holds); ``interp generate --recompute`` recomputes instead."""
    _check_model(model, config)
    by_layer: dict[int, list[int]] = defaultdict(list)
    for la, h in check_heads(model, config.heads):
        by_layer[la].append(h)

    def make(heads: list[int]) -> Callable:
        idx = sorted(set(heads))
        state: dict[str, Tensor] = {}

        def hook(pattern: Tensor, hook) -> Tensor:
            if pattern.shape[0] != 1:
                raise InputError("cached calibration decodes one sequence at a time")
            x = pattern[0, idx]  # [h, q, k]
            q, k = x.shape[-2:]
            col = x.sum(-2)  # [h, k]
            if q == k:  # the prompt pass: every row
                state["col"] = col
            else:
                prev = state.get("col")
                if prev is None or prev.shape[-1] != k - q:
                    raise InputError(
                        "cached calibration lost track of the sequence: use fresh hooks "
                        "(cached_calibration_hooks) for every generation"
                    )
                state["col"] = torch.cat([prev, prev.new_zeros(prev.shape[0], q)], -1) + col
            n_queries = k - torch.arange(k, device=x.device, dtype=x.dtype)  # N - j
            sink = calibrated_sinks(state["col"] / n_queries, config.threshold)
            out = pattern.clone()
            out[0, idx] = move_sink_mass(x, sink, config.beta)
            return out

        return hook

    return [(act_name("pattern", la), make(hs)) for la, hs in by_layer.items()]


def _check_model(model: TransformerBridge, config: CalibrationConfig) -> None:
    if config.model != str(model.cfg.model_name):
        raise InputError(
            f"this calibration was made for {config.model!r}, not {model.cfg.model_name!r}"
        )


class AppliedCalibration:
    """Handle returned by ``apply_calibration``; ``remove()`` restores the model exactly."""

    def __init__(
        self, model: TransformerBridge, config: CalibrationConfig, lengths: list[int] | None = None
    ) -> None:
        _check_model(model, config)
        self.model, self.config, self._handles = model, config, []
        for name, fn in calibration_hooks(model, config, lengths):
            point = model.hook_dict[name]
            self._handles.append((point, point.add_hook(fn, is_permanent=True)))

    def remove(self) -> None:
        for point, handle in self._handles:
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)
        self._handles = []


def apply_calibration(
    model: TransformerBridge,
    config: CalibrationConfig | str | Path,
    lengths: list[int] | None = None,
) -> AppliedCalibration:
    """Calibrate ``model`` in place until ``.remove()`` (hooks survive ``reset_hooks``)."""
    if not isinstance(config, CalibrationConfig):
        config = CalibrationConfig.load(Path(config))
    return AppliedCalibration(model, config, lengths)


@contextmanager
def calibrated(
    model: TransformerBridge, config: CalibrationConfig, lengths: list[int] | None = None
) -> Iterator[TransformerBridge]:
    """``with calibrated(model, config):`` applies the calibration inside the block only;
    ``lengths`` as in ``calibration_hooks`` for a padded batch."""
    handle = apply_calibration(model, config, lengths)
    try:
        yield model
    finally:
        handle.remove()
