"""Causal role scores: what each head *does* for a role, not where it looks (docs/methods.md
section 11). Three registered detectors score every head by the loss increase of one
intervention on that head alone, estimated for all heads at once by attribution patching
(``interp.ablation.attribution``: one forward + one backward pass) and checked by running the
intervention itself on the ``exact_top`` heads with the largest estimates:

- ``sink_need``: hide the head's sink keys (key 0 and its hidden sinks, s_j > 0.1; rows
  renormalised by the softmax) on the sink detector's text samples; the mean next-token loss.
- ``retrieval_effect``: make the head attend uniformly (Wu et al.'s masking) on the decoding
  steps of a teacher-forced needle answer (the prompt is prefilled unmasked, as the official
  code masks the generated tokens only); the answer's negative log-probability.
- ``anchor_effect``: patch the head's output from a run whose far context was replaced (every
  token but the first, the sink keys and the last ``near`` tokens taken from another window);
  the loss of the window's last token.

``score`` is the estimated loss increase in nats (positive: the head serves the role), ``exact``
the measured one on the checked heads (NaN elsewhere); ``label`` = score > ``threshold``.
``inputs["spearman_exact"]`` is the rank agreement of estimate and exact effect on the checked
heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.ablation.attribution import (
    exact_effects,
    pattern_attribution,
    z_attribution,
    z_cache,
    z_patch_hooks,
)
from interp.ablation.uniform import hide_sink_keys, score_hooks, uniform_scores
from interp.defaults import (
    ANCHOR_NEAR,
    ATTRIBUTION_STEPS,
    CAUSAL_EXACT_TOP,
    CAUSAL_THRESHOLD,
    SINK_SAMPLE_TOKENS,
    SINK_THRESHOLD,
)
from interp.errors import InputError
from interp.heads.base import DetectorBase, DetectorResult, between, configure, head_frame, register
from interp.inputs.text import check_inputs, haystack_windows, model_prompt_samples, text_samples
from interp.models.info import is_causal
from interp.tokens import TokenBatch

Head = tuple[int, int]
CHUNK = 4  # windows per forward + backward pass of the anchor effect (memory)


def sample_loss(logits: Tensor, batch: TokenBatch) -> Tensor:
    """Mean over samples of each sample's mean next-token cross-entropy (padding ignored)."""
    nll = -logits[:, :-1].log_softmax(-1).gather(-1, batch.tokens[:, 1:, None])[..., 0]
    keep = batch.attention_mask[:, 1:].to(nll)
    return ((nll * keep).sum(1) / keep.sum(1)).mean()


def check_estimate(
    estimate: Tensor, run: Callable[[Head | None], float], top: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Exact effects of the ``top`` heads with the largest |estimate| ([layer, head] array, NaN
    elsewhere) and their rank agreement with the estimate."""
    from scipy.stats import spearmanr

    n_heads = estimate.shape[1]
    order = torch.argsort(-estimate.abs().reshape(-1), stable=True)[:top].tolist()
    heads = [(i // n_heads, i % n_heads) for i in order]
    exact = np.full(tuple(estimate.shape), np.nan)
    for (la, h), e in zip(heads, exact_effects(run, heads), strict=True):
        exact[la, h] = e
    est = np.array([float(estimate[la, h]) for la, h in heads])
    got = np.array([exact[la, h] for la, h in heads])
    rho = float(spearmanr(est, got)[0]) if len(heads) > 2 and np.ptp(got) > 0 else float("nan")
    err = float(np.abs(est - got).max()) if heads else float("nan")
    return exact, {"n_checked": len(heads), "spearman_exact": rho, "max_abs_error": err}


def causal_result(
    name: str, estimate: Tensor, exact: np.ndarray, threshold: float, inputs: dict
) -> DetectorResult:
    table = head_frame(estimate, threshold, exact=torch.from_numpy(exact).float())
    table["checked"] = table.exact.notna()
    inputs = {**inputs, "causal_fraction": float(table.label.mean())}
    return DetectorResult(name, table, inputs)


@dataclass
class Measured:
    """One causal score before its check: ``estimate`` [layer, head], ``run(head)`` the metric
    with that head's intervention (None: clean), what it was computed on."""

    estimate: Tensor
    run: Callable[[Head | None], float]
    inputs: dict[str, Any]


@dataclass
class Probe:
    """One input of a causal score's contrast: the metric on ``tokens`` and the intervention
    on every head, either a score ``edit`` (on the query ``rows``, all if None) or patching
    ``hook_z`` from the ``corrupted`` tokens; ``weight``: its share of the score. The same
    probes feed the head-level attribution (``estimate``) and the attention-output SAEs'
    feature attribution (``interp.sae.family_scores``)."""

    tokens: Tensor
    mask: Tensor | None
    metric: Callable[[Tensor], Tensor]
    weight: float = 1.0
    edit: Callable[[Tensor], Tensor] | None = None
    rows: Tensor | None = None
    corrupted: Tensor | None = None
    label: str = ""


def estimate(model: TransformerBridge, probes: list[Probe], steps: int) -> tuple[Tensor, float]:
    """Weighted sum over ``probes`` of every head's attribution-patching estimate, and of the
    clean metric."""
    total = torch.zeros(int(model.cfg.n_layers), int(model.cfg.n_heads))
    value = 0.0
    for p in probes:
        if p.edit is not None:
            att = pattern_attribution(model, p.tokens, p.mask, p.metric, p.edit, p.rows, steps)
        else:
            assert p.corrupted is not None, "a probe edits scores or patches from corrupted"
            att = z_attribution(model, p.tokens, p.corrupted, p.mask, p.metric, steps)
        total += att.estimate * p.weight
        value += att.value * p.weight
    return total, value


class CausalDetector(DetectorBase):
    """``run`` = ``measure`` (the estimate) + the exact check of the top heads. Causal models
    only, too slow for the dashboard's load, not per prompt, interventional. ``probes`` gives
    the contrast every estimate is computed on."""

    name: ClassVar[str]
    causal_only = True
    dashboard = False
    per_prompt = False
    interventional = True

    def probes(self, model: TransformerBridge, c: Any) -> list[Probe]:
        raise NotImplementedError

    def measure(self, model: TransformerBridge, c: Any) -> Measured:
        raise NotImplementedError

    def run(self, model: TransformerBridge, config: Any = None, **options: Any) -> DetectorResult:
        """The estimate for every head and the exact effect of the ``exact_top`` heads with the
        largest |estimate| (``options``: the fields of the detector's Config)."""
        c = configure(self, config, **options)
        _causal(model, self.name)
        m = self.measure(model, c)
        exact, check = check_estimate(m.estimate, m.run, c.exact_top)
        return causal_result(self.name, m.estimate, exact, c.threshold, {**m.inputs, **check})


def _summary(what: str) -> Callable[[DetectorResult], str]:
    def summary(r: DetectorResult) -> str:
        i, thr = r.inputs, r.table.threshold.iloc[0]
        return (
            f"{what} (attribution patching, loss increase > {thr:g} nats): "
            f"{i['causal_fraction']:.1%} of heads; estimate vs exact on the top "
            f"{i['n_checked']} heads: Spearman {i['spearman_exact']:.2f}."
        )

    return staticmethod(summary)


@dataclass(frozen=True)
class CausalOptions:
    """Options every causal role score has: the label threshold (nats), how many heads the
    exact intervention checks, and the attribution's integration steps (1: plain AtP)."""

    threshold: float = field(default=CAUSAL_THRESHOLD, metadata=between(0, 1000))
    exact_top: int = field(default=CAUSAL_EXACT_TOP, metadata=between(0, 100000))
    steps: int = field(default=ATTRIBUTION_STEPS, metadata=between(1, 100))


@dataclass(frozen=True)
class SinkNeedConfig(CausalOptions):
    """``inputs``: "text" (Gu et al.'s text samples) or "model_prompts"; ``keys``: "sinks"
    (key 0 and the head's hidden sinks) or "first" (key 0 only)."""

    n_tokens: int = field(default=SINK_SAMPLE_TOKENS, metadata=between(4, 32768))
    inputs: str = "text"
    keys: str = "sinks"

    def __post_init__(self) -> None:
        check_inputs("sink_need", self.inputs)
        if self.keys not in ("sinks", "first"):
            raise InputError(f"sink_need keys must be 'sinks' or 'first', not {self.keys!r}")


@register
class SinkNeedDetector(CausalDetector):
    name = "sink_need"
    Config = SinkNeedConfig
    summary = _summary("Heads that need their sink keys")

    def probes(self, model: TransformerBridge, c: SinkNeedConfig) -> list[Probe]:
        """The sink samples, their mean next-token loss, the sink keys hidden."""
        from interp.ablation.uniform import hide_first_key

        if c.inputs == "text":
            batch = text_samples(model, n_tokens=c.n_tokens)
        else:
            batch = model_prompt_samples(model, c.n_tokens)
        edit = hide_sink_keys if c.keys == "sinks" else hide_first_key

        def metric(logits: Tensor) -> Tensor:
            return sample_loss(logits, batch)

        return [Probe(batch.tokens, batch.attention_mask, metric, edit=edit)]

    def measure(self, model: TransformerBridge, c: SinkNeedConfig) -> Measured:
        """Estimated loss increase when each head alone loses its sink keys."""
        (p,) = self.probes(model, c)
        total, value = estimate(model, [p], c.steps)
        edit = p.edit
        assert edit is not None  # a score edit (probes above)

        def run(head: Head | None) -> float:
            hooks = [] if head is None else score_hooks(model, [head], edit)
            with torch.no_grad(), model.hooks(fwd_hooks=hooks):
                return float(p.metric(model(p.tokens, attention_mask=p.mask)))

        inputs = {"source": c.inputs, "n_seqs": len(p.tokens), "n_tokens": c.n_tokens,
                  "keys": c.keys, "clean_loss": value}  # fmt: skip
        return Measured(total, run, inputs)


@dataclass(frozen=True)
class RetrievalEffectConfig(CausalOptions):
    """Needle tests (as the retrieval detector's validation: held-out needles 3-5 by default,
    so the scores are not fitted to the needles the copy-paste score used)."""

    lengths: tuple[int, ...] = field(default=(256, 512), metadata=between(64, 1000000))
    depths: tuple[float, ...] = field(default=(25.0, 75.0), metadata=between(0, 100))
    needles: tuple[int, ...] = field(default=(3, 4, 5), metadata=between(0, 999))


def answer_batch(tokenizer, test) -> tuple[Tensor, Tensor, Tensor]:
    """Teacher-forced needle answer: tokens [1, prompt + answer], the answer positions' mask
    [1, pos] (the tokens the metric predicts) and the decoding rows [1, pos] (the answer tokens
    as queries, i.e. the steps a masked head is masked on)."""
    answer = tokenizer(" " + test.needle.answer, add_special_tokens=False)["input_ids"]
    ids = list(test.ids) + list(answer)
    n, a = len(ids), len(answer)
    targets = torch.zeros(1, n, dtype=torch.bool)
    targets[0, n - a :] = True
    rows = torch.zeros(1, n, dtype=torch.bool)
    rows[0, n - a : n - 1] = True
    return torch.tensor([ids]), targets, rows


def answer_loss(logits: Tensor, tokens: Tensor, targets: Tensor) -> Tensor:
    """Negative log-probability of the ``targets`` tokens (summed over the answer)."""
    logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return -(logp * targets[:, 1:].to(logp)).sum()


@register
class RetrievalEffectDetector(CausalDetector):
    name = "retrieval_effect"
    Config = RetrievalEffectConfig
    summary = _summary("Heads whose masking costs the needle answer")

    def probes(self, model: TransformerBridge, c: RetrievalEffectConfig) -> list[Probe]:
        """One teacher-forced needle test each: the answer's negative log-probability, every
        head attending uniformly on the decoding steps."""
        from interp.heads.retrieval import make_tests
        from interp.inputs.text import reads_english

        if not reads_english(model):
            raise InputError(
                "retrieval_effect needs a model that reads English needle questions; for a toy "
                "model use the planted benchmark's task needles (circuits.planted_mixture)"
            )
        tests = make_tests(model, lengths=list(c.lengths), depths=list(c.depths),
                           needles=c.needles)  # fmt: skip
        out = []
        for t in tests:
            tokens, targets, rows = answer_batch(model.tokenizer, t)
            metric = lambda lg, t=tokens, g=targets: answer_loss(lg, t, g)  # noqa: E731
            out.append(Probe(tokens, None, metric, 1 / len(tests), uniform_scores, rows,
                             label=t.key))  # fmt: skip
        return out

    def measure(self, model: TransformerBridge, c: RetrievalEffectConfig) -> Measured:
        """Estimated increase of the needle answer's negative
        log-probability when each head alone attends uniformly on the decoding steps, mean
        over the needle tests."""
        probes = self.probes(model, c)
        total, value = estimate(model, probes, c.steps)

        def run(head: Head | None) -> float:
            out = 0.0
            for p in probes:
                hooks = [] if head is None else score_hooks(model, [head], uniform_scores, p.rows)
                with torch.no_grad(), model.hooks(fwd_hooks=hooks):
                    out += float(p.metric(model(p.tokens))) * p.weight
            return out

        inputs = {"n_tests": len(probes), "tests": [p.label for p in probes],
                  "clean_answer_nll": value}  # fmt: skip
        return Measured(total, run, inputs)


@dataclass(frozen=True)
class AnchorEffectConfig(CausalOptions):
    """``n_windows`` windows of ``n_tokens`` of the bundled haystack (or the model folder's
    prompts); the last ``near`` tokens of each window stay, and so do token 0 and the sink keys
    (keys j >= 1 with s_j > 0.1 in at least ``sink_heads`` of all heads)."""

    n_tokens: int = field(default=256, metadata=between(4, 32768))
    n_windows: int = field(default=8, metadata=between(2, 1024))
    near: int = field(default=ANCHOR_NEAR, metadata=between(1, 32768))
    sink_heads: float = field(default=0.1, metadata=between(0, 1))
    inputs: str = "text"

    def __post_init__(self) -> None:
        check_inputs("anchor_effect", self.inputs)
        if not 0 < self.near < self.n_tokens - 1:
            raise InputError(f"near must be in 1..n_tokens - 2, got {self.near}")


@torch.no_grad()
def sink_keys(model: TransformerBridge, batch: TokenBatch, share: float) -> Tensor:
    """[batch, key] True where key j is token 0 or a sink (s_j > 0.1) of >= ``share`` of all
    heads, s_j = sum_i A[i, j] / (N - j) on this window (computed layer by layer)."""
    from interp.hook_names import act_name

    counts = torch.zeros(batch.tokens.shape)
    n = batch.tokens.shape[1]

    def hook(p: Tensor, hook) -> None:  # [batch, head, query, key]
        s = p.float().sum(-2) / torch.arange(n, 0, -1).to(p.device)
        counts.add_((s > SINK_THRESHOLD).float().sum(1).cpu())

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    hooks = [(act_name("pattern", la), hook) for la in range(n_layers)]
    _logits(model, batch, hooks)
    keep = counts >= share * n_layers * n_heads
    keep[:, 0] = True
    return keep


def last_loss(tokens: Tensor) -> Callable[[Tensor], Tensor]:
    """metric: the loss of each window's last token (predicted at the position before it),
    mean over the windows of ``tokens`` [batch, pos]."""

    def metric(logits: Tensor) -> Tensor:
        return -logits[:, -2].log_softmax(-1).gather(-1, tokens[:, -1:]).mean()

    return metric


def far_replaced(tokens: Tensor, keep: Tensor, near: int) -> Tensor:
    """Each window's far tokens (not kept, not in the last ``near``) taken from the next window
    (cyclically), position by position."""
    far = ~keep.clone()
    far[:, -near:] = False
    return torch.where(far, tokens.roll(-1, 0), tokens)


def _window_probes(tokens: Tensor, corrupted: Tensor) -> list[Probe]:
    """A few windows per probe (the backward pass keeps every activation of its batch)."""
    n = len(tokens)
    return [
        Probe(
            tokens[s], None, last_loss(tokens[s]), (s.stop - s.start) / n, corrupted=corrupted[s]
        )  # fmt: skip
        for s in (slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK))
    ]


@register
class AnchorEffectDetector(CausalDetector):
    name = "anchor_effect"
    Config = AnchorEffectConfig
    summary = _summary("Heads that carry far context to the last token")

    def probes(self, model: TransformerBridge, c: AnchorEffectConfig) -> list[Probe]:
        """A few windows each: the last token's loss, every head's z patched from the windows
        with their far context replaced."""
        tokens, corrupted, _ = self._windows(model, c)
        return _window_probes(tokens, corrupted)

    def _windows(self, model: TransformerBridge, c: AnchorEffectConfig):
        """(windows, the same with their far context replaced, the kept sink keys)."""
        if c.inputs == "text":
            batch = haystack_windows(model, c.n_tokens, c.n_windows)
        else:
            batch = model_prompt_samples(model, c.n_tokens, c.n_windows, equal=True)
        if len(batch.lengths) < 2 or min(batch.lengths) != max(batch.lengths):
            raise InputError("anchor_effect needs >= 2 windows of equal length")
        keep = sink_keys(model, batch, c.sink_heads)
        corrupted = far_replaced(batch.tokens, keep, c.near)
        if not bool((corrupted != batch.tokens).any()):
            raise InputError(
                f"anchor_effect: windows of {batch.tokens.shape[1]} tokens with near={c.near} "
                "leave no far token to replace (all are near or sink keys); lower near or use "
                "longer inputs"
            )
        return batch.tokens, corrupted, keep

    def measure(self, model: TransformerBridge, c: AnchorEffectConfig) -> Measured:
        """Estimated increase of the last token's loss when
        each head alone reads the window with its far context replaced (module docstring)."""
        tokens, corrupted, keep = self._windows(model, c)
        n = len(tokens)
        probes = _window_probes(tokens, corrupted)
        total, value = estimate(model, probes, c.steps)
        layers = range(int(model.cfg.n_layers))
        caches = [z_cache(model, p.corrupted, None, layers) for p in probes]  # type: ignore[arg-type]

        def run(head: Head | None) -> float:
            out = 0.0
            for p, cache in zip(probes, caches, strict=True):
                hooks = [] if head is None else z_patch_hooks(model, [head], cache=cache)
                with torch.no_grad(), model.hooks(fwd_hooks=hooks):
                    out += float(p.metric(model(p.tokens))) * p.weight
            return out

        far = int((corrupted != tokens).sum())
        inputs = {"source": c.inputs, "n_windows": n, "n_tokens": c.n_tokens,
                  "near": c.near, "kept_sink_keys": int(keep[:, 1:].sum()),
                  "replaced_tokens": far, "clean_loss": value}  # fmt: skip
        return Measured(total, run, inputs)


def _causal(model: TransformerBridge, name: str) -> None:
    if not is_causal(model):
        raise InputError(f"{name} scores a causal language model; this model is an encoder")


def _logits(model: TransformerBridge, batch: TokenBatch, hooks) -> Tensor:
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        return model(batch.tokens, attention_mask=batch.attention_mask)
