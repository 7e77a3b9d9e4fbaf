"""Retrieval heads: the needle-in-a-haystack copy-paste score (Wu et al. 2024, arXiv 2404.15574;
official code nightdessert/Retrieval_Head; docs in README "Head detectors").

For each test the model decodes greedily (at most 50 tokens). At a step that generates token w,
head h copy-pastes if the argmax of its attention row for the current query lies inside the
answer span (the short answer inside the needle sentence, the official ``real_needle``) and the
prompt token there equals w; each copy-paste adds 1 / |answer tokens| to h's score for that
test. As in the official code, a test counts only if the response recalls more than half of the
answer (ROUGE-1 recall > 0.5) and a head's score is the mean over counted tests. Retrieval head:
score > 0.1. The prompt is prefilled without patterns (``interp.generate``), as the official
code prefills before the scored decoding steps.

Differences from the official code, and why:
- the answer span is exact (token range of the answer inside the needle tokens, see
  ``interp.inputs.needles``) instead of a 90 %-overlap search;
- stop rule: we stop after EOS or any token whose text contains a newline; the official code
  stops on the newline token only. Byte-level BPE vocabularies (SmolLM2) fold newlines into
  tokens such as ".\n", and chat models end their turn with EOS, so the official rule would
  run on to 50 tokens there;
- the default grid is scaled to a small model on a CPU (``--grid large`` goes to 8k tokens).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.defaults import MAX_NEW_TOKENS, RECALL_THRESHOLD, RETRIEVAL_THRESHOLD
from interp.errors import InputError
from interp.generate import greedy_decode, newline_or_eos
from interp.generate_batched import Decoded, batched_decode_supported, batched_greedy_decode
from interp.heads.base import DetectorBase, DetectorResult, between, configure, head_frame, register
from interp.heads.metrics import ValidationMetric
from interp.hook_names import act_name
from interp.inputs.needles import (
    NeedleTest,
    build_test,
    grid,
    load_needles,
    rouge1_recall,
)
from interp.models.info import is_causal
from interp.report import write_json


@dataclass
class TestOutcome:
    scores: np.ndarray  # [layer, head] copy-paste score of this test
    response: str
    recall: float
    n_generated: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.recall > RECALL_THRESHOLD


def copy_paste_hits(
    argmax_keys: torch.Tensor, prompt: torch.Tensor, start: int, end: int, token: int
) -> torch.Tensor:
    """1 where a head's top key lies in ``[start, end)`` and the prompt token there is ``token``.

    ``argmax_keys``: [..., head] key index of each head's largest attention weight.
    """
    inside = (argmax_keys >= start) & (argmax_keys < end)
    at = prompt[argmax_keys.clamp(max=prompt.numel() - 1)]
    return (inside & (at == token)).float()


def run_test(
    model: TransformerBridge,
    test: NeedleTest,
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    decode_hooks: Sequence[tuple[str, Callable]] = (),
    score_heads: bool = True,
) -> TestOutcome:
    """Decode the answer to one test and (if ``score_heads``) score every head on it.

    ``decode_hooks`` act on the decoding steps only (the official masking of heads: the prompt
    is prefilled unmasked); ``fwd_hooks`` act on the prompt pass too."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    scores = torch.zeros(n_layers, n_heads)
    top: dict[int, torch.Tensor] = {}
    prompt = torch.tensor(test.ids)

    def recorder(layer: int) -> Callable:
        def hook(pattern: torch.Tensor, hook) -> None:  # [1, head, 1, key]
            top[layer] = pattern[0, :, -1].argmax(-1).cpu()

        return hook

    def on_step(token: int) -> None:
        for layer, keys in top.items():
            hits = copy_paste_hits(keys, prompt, test.start, test.end, token)
            scores[layer] += hits / (test.end - test.start)

    step_hooks = list(decode_hooks) + (
        [(act_name("pattern", la), recorder(la)) for la in range(n_layers)] if score_heads else []
    )
    t0 = time.perf_counter()
    out = greedy_decode(
        model,
        test.ids,
        max_new_tokens=max_new_tokens,
        stop=newline_or_eos(model),
        fwd_hooks=fwd_hooks,
        step_hooks=step_hooks,
        on_step=on_step if score_heads else None,
    )
    response = model.tokenizer.decode(out, skip_special_tokens=True).strip()
    recall = rouge1_recall(test.needle.answer, response)
    return TestOutcome(scores.numpy(), response, recall, len(out), time.perf_counter() - t0)


def run_tests(
    model: TransformerBridge,
    tests: Sequence[NeedleTest],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    score_heads: bool = True,
    on_done: Callable[[int, TestOutcome], None] | None = None,
) -> list[TestOutcome]:
    """``run_test`` for every test, batched where the model allows it
    (``interp.generate_batched``: one prefill per distinct prefix, batched greedy steps; same
    answers and scores as one at a time), else one at a time. ``on_done(i, outcome)`` fires
    as each test finishes."""
    if not tests:
        return []
    if not batched_decode_supported(model):
        found = []
        for i, test in enumerate(tests):
            found.append(run_test(model, test, max_new_tokens=max_new_tokens,
                                  score_heads=score_heads))  # fmt: skip
            if on_done is not None:
                on_done(i, found[-1])
        return found
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    outcomes: list[TestOutcome | None] = [None] * len(tests)
    t0 = [time.perf_counter()]

    def finish(i: int, d: Decoded) -> None:
        test, scores = tests[i], torch.zeros(n_layers, n_heads)
        prompt = torch.tensor(test.ids)
        for token, keys in zip(d.tokens, d.top_keys, strict=False):
            scores += copy_paste_hits(keys, prompt, test.start, test.end, token) / (
                test.end - test.start
            )
        response = model.tokenizer.decode(d.tokens, skip_special_tokens=True).strip()
        seconds, t0[0] = time.perf_counter() - t0[0], time.perf_counter()
        o = TestOutcome(scores.numpy(), response, rouge1_recall(test.needle.answer, response),
                        len(d.tokens), seconds)  # fmt: skip
        outcomes[i] = o
        if on_done is not None:
            on_done(i, o)

    batched_greedy_decode(
        model,
        [t.ids for t in tests],
        max_new_tokens=max_new_tokens,
        stop=newline_or_eos(model),
        record_top_keys=score_heads,
        on_done=finish,
    )
    return [o for o in outcomes if o is not None]


def make_tests(
    model: TransformerBridge,
    *,
    grid_name: str = "small",
    lengths: Sequence[int] | None = None,
    depths: Sequence[int | float] | None = None,
    needles: Sequence[int] = (0, 1, 2),
) -> list[NeedleTest]:
    """Tests for every (length, depth, needle) of the grid (explicit lengths/depths win)."""
    g_lengths, g_depths = grid(grid_name, int(model.cfg.n_ctx))
    all_needles = load_needles()
    bad = [i for i in needles if not 0 <= i < len(all_needles)]
    if bad:
        raise InputError(f"needle indices {bad} out of range 0..{len(all_needles) - 1}")
    return [
        build_test(model, all_needles[i], int(n), float(d), i)
        for n in (lengths or g_lengths)
        for d in (depths or g_depths)
        for i in needles
    ]


def _checkpoint_path(workdir: Path, test: NeedleTest) -> Path:
    key = [test.ids, test.start, test.end, test.needle.answer]  # a changed span recomputes
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
    return workdir / f"{test.key}-{digest}.json"


def _load(path: Path) -> TestOutcome | None:
    try:
        d = json.loads(path.read_text())
        return TestOutcome(np.array(d["scores"], dtype=np.float32), **d["outcome"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(path: Path, o: TestOutcome) -> None:
    outcome = {
        "response": o.response,
        "recall": o.recall,
        "n_generated": o.n_generated,
        "seconds": o.seconds,
    }
    write_json({"scores": o.scores.tolist(), "outcome": outcome}, path)


@dataclass(frozen=True)
class RetrievalConfig:
    """Options of the retrieval detector: the needle grid (``grid_name`` "small" / "large", or
    explicit ``lengths`` / ``depths``), the needles used (held-out 3-5 validate) and the label
    threshold."""

    grid_name: str = "small"
    lengths: tuple[int, ...] | None = field(default=None, metadata=between(64, 1000000))
    depths: tuple[float, ...] | None = field(default=None, metadata=between(0, 100))
    needles: tuple[int, ...] = field(default=(0, 1, 2), metadata=between(0, 999))
    # Wu et al.: score > 0.1
    threshold: float = field(default=RETRIEVAL_THRESHOLD, metadata=between(0, 1))


@register
class RetrievalDetector(DetectorBase):
    resumable = True  # run() keeps each finished needle test under workdir
    name = "retrieval"
    causal_only = True
    dashboard = False
    per_prompt = False
    interventional = False
    Config = RetrievalConfig

    @staticmethod
    def validation_metric(model: TransformerBridge, seed: int = 1) -> ValidationMetric:
        """Needle accuracy on held-out needles (3-5), lengths 256 and 512, depths 25 and 75 %;
        the heads are masked on the decoding steps only, as in the official code."""
        tests = make_tests(model, lengths=[256, 512], depths=[25.0, 75.0], needles=(3, 4, 5))
        return ValidationMetric(
            "needle_accuracy",
            True,
            lambda hooks: {
                f"needle_{k}": v for k, v in needle_accuracy(model, tests, hooks).items()
            },
            {"tests": [t.key for t in tests]},
        )

    @staticmethod
    def summary(r: DetectorResult) -> str:
        """One line of the scan summary."""
        i, thr = r.inputs, r.table.threshold.iloc[0]
        return (
            f"Retrieval heads (score > {thr:.3g}): {i['retrieval_head_fraction']:.1%} of heads; "
            f"{i['zero_score_fraction']:.1%} score exactly 0; {i['n_tests_counted']} of "
            f"{i['n_tests']} needle tests counted (ROUGE-1 recall > {RECALL_THRESHOLD}); lengths "
            f"{i['lengths']}, depths {i['depths']}."
        )

    def run(
        self,
        model: TransformerBridge,
        config: RetrievalConfig | None = None,
        *,
        workdir: Path | None = None,
        progress: bool = True,
        **options: Any,
    ) -> DetectorResult:
        """Score every head on the needle grid (``options``: the fields of ``RetrievalConfig``).
        With ``workdir``, each finished test is saved there and reused by a later run (a long
        grid can be stopped and resumed)."""
        c = configure(self, config, **options)
        grid_name, needles, threshold = c.grid_name, c.needles, c.threshold
        if not is_causal(model):
            raise InputError(
                f"retrieval heads need a causal language model that can answer questions; "
                f"{model.cfg.model_name} is not causal"
            )
        tests = make_tests(
            model, grid_name=grid_name, lengths=c.lengths, depths=c.depths, needles=needles
        )
        paths = [_checkpoint_path(Path(workdir), t) if workdir else None for t in tests]
        found = [_load(p) if p and p.is_file() else None for p in paths]
        reused = sum(o is not None for o in found)
        todo = [i for i, o in enumerate(found) if o is None]
        bar = tqdm(total=len(tests), initial=reused, desc="retrieval: needle tests",
                   disable=not progress)  # fmt: skip

        def done(i: int, o: TestOutcome) -> None:  # checkpoint each test as it finishes
            found[todo[i]] = o
            path = paths[todo[i]]
            if path:
                _save(path, o)
            bar.update(1)

        with bar:
            run_tests(model, [tests[i] for i in todo], on_done=done)
        outcomes = [o for o in found if o is not None]
        passed = [o for o in outcomes if o.passed]
        n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
        mean = (
            np.mean([o.scores for o in passed], axis=0)
            if passed
            else np.zeros((n_layers, n_heads), dtype=np.float32)
        )
        scores = torch.tensor(mean)
        table = head_frame(scores, threshold, n_tests_counted=np.full(scores.shape, len(passed)))
        tests_table = pd.DataFrame(
            {
                "test": [t.key for t in tests],
                "length": [t.length for t in tests],
                "depth": [t.depth for t in tests],
                "needle": [t.needle_index for t in tests],
                "needle_start": [t.needle_start for t in tests],
                "needle_end": [t.needle_end for t in tests],
                "answer_start": [t.start for t in tests],
                "answer_end": [t.end for t in tests],
                "response": [o.response for o in outcomes],
                "rouge1_recall": [o.recall for o in outcomes],
                "counted": [o.passed for o in outcomes],
                "n_generated": [o.n_generated for o in outcomes],
                "seconds": [o.seconds for o in outcomes],
            }
        )
        inputs: dict[str, Any] = {
            "kind": "needle in a haystack",
            "grid": grid_name,
            "lengths": sorted({t.length for t in tests}),
            "depths": sorted({t.depth for t in tests}),
            "needles": list(needles),
            "n_tests": len(tests),
            "n_tests_counted": len(passed),
            "n_tests_reused": reused,
            "retrieval_head_fraction": float(table.label.mean()),
            "zero_score_fraction": float((table.score == 0).mean()),
        }
        return DetectorResult(self.name, table, inputs, {"tests": tests_table})


def needle_accuracy(
    model: TransformerBridge,
    tests: Sequence[NeedleTest],
    decode_hooks: Sequence[tuple[str, Callable]] = (),
    progress: bool = False,
) -> dict[str, float]:
    """Fraction of tests answered (ROUGE-1 recall of the answer > 0.5) and mean recall, with
    ``decode_hooks`` on the decoding steps (the prompt is prefilled without them, as the
    official masking experiment does)."""
    if decode_hooks:
        recalls = [
            run_test(model, t, decode_hooks=decode_hooks, score_heads=False).recall
            for t in tqdm(tests, desc="needle tests", disable=not progress, leave=False)
        ]
    else:  # no ablation: the batched decoder gives the same answers
        with tqdm(total=len(tests), desc="needle tests", disable=not progress, leave=False) as bar:
            found = run_tests(model, tests, score_heads=False, on_done=lambda i, o: bar.update(1))
        recalls = [o.recall for o in found]
    return {
        "accuracy": float(np.mean([r > RECALL_THRESHOLD for r in recalls])),
        "mean_recall": float(np.mean(recalls)),
    }
