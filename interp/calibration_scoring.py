"""Scoring multiple-choice examples under a sink calibration, as ACT's official code does.

Official (GATECH-EIC/ACT ``main.py``): one forward per prompt; the prediction is the argmax of
the log-softmax over the label tokens' logits at the last prompt position. ``mode="label"`` does
exactly that with each choice's first token (the official code takes the last token of each
label's encoding: the same token for one-token labels, which every bundled choice is).
``mode="sequence"`` scores choices that share a first token or span several tokens by their
summed log-probability after the prompt; the calibration's sink set is then computed on the
prompt's rows only, so every choice of one example is scored under one and the same transform.
``mode="auto"`` (default) takes ``label`` whenever every example's choices start with distinct
tokens.

Speed: ``cache_layers`` keeps the residual entering each given layer from the uncalibrated run;
a calibration whose first head sits in layer l then starts at layer l (layers below are not
run: their output is the cached residual, exactly), which is what makes a head screen cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.calibration import CalibrationConfig, calibration_hooks
from interp.errors import InputError
from interp.hook_names import act_name
from interp.tokens import from_token_ids

MODES = ("auto", "label", "sequence")


class _Stop(Exception):
    pass


def _choice_tokens(tok, prompt_ids: list[int], prompt: str, choice: str) -> list[int]:
    ids = tok(prompt + choice)["input_ids"]
    if ids[: len(prompt_ids)] != prompt_ids:  # the choice merged with the prompt's last token
        ids = prompt_ids + tok(choice, add_special_tokens=False)["input_ids"]
    return ids[len(prompt_ids) :]


class ChoiceScorer:
    """Tokenizes every example once; ``logprobs(config)`` scores every choice with the
    calibration ``config`` applied (None: the uncalibrated model)."""

    def __init__(
        self,
        model: TransformerBridge,
        rows: list[dict],
        *,
        batch_size: int = 64,
        mode: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise InputError(f"scoring mode {mode!r}: choose one of {', '.join(MODES)}")
        self.model, self.rows, self.batch_size = model, rows, batch_size
        tok = model.tokenizer
        self.prompts = [tok(r["prompt"])["input_ids"] for r in rows]
        self.choice_ids = [
            [_choice_tokens(tok, p, r["prompt"], c) for c in r["choices"]]
            for p, r in zip(self.prompts, rows, strict=True)
        ]
        distinct = all(
            len({ids[0] for ids in choices}) == len(choices) for choices in self.choice_ids
        )
        if mode == "label" and not distinct:
            raise InputError(
                "label scoring needs every example's choices to start with distinct tokens; "
                "use mode='sequence' (summed log-probability of each choice)"
            )
        self.mode = ("label" if distinct else "sequence") if mode == "auto" else mode
        self.labels = np.array([r["label"] for r in rows])
        self.n_choices = max(len(r["choices"]) for r in rows)
        # one sequence per prompt (label) or per (prompt, choice) (sequence)
        self.seqs: list[list[int]] = []
        self.owner: list[tuple[int, int]] = []  # (example, choice or -1)
        self.prompt_len: list[int] = []
        for e, (p, choices) in enumerate(zip(self.prompts, self.choice_ids, strict=True)):
            if self.mode == "label":
                self.seqs.append(p)
                self.owner.append((e, -1))
                self.prompt_len.append(len(p))
            else:
                for c, ids in enumerate(choices):
                    self.seqs.append(p + ids)
                    self.owner.append((e, c))
                    self.prompt_len.append(len(p))
        # batches of similar lengths waste less on padding
        order = sorted(range(len(self.seqs)), key=lambda i: len(self.seqs[i]))
        self.seqs = [self.seqs[i] for i in order]
        self.owner = [self.owner[i] for i in order]
        self.prompt_len = [self.prompt_len[i] for i in order]
        self._cache: dict[int, list[Tensor]] = {}
        self._second: dict[int, Tensor] = {}  # layer -> [sequence, head] 2nd-largest s_j
        self._base: np.ndarray | None = None
        self._block_output_is_tuple: bool | None = None

    def batches(self) -> Iterator[tuple[int, int]]:
        for s in range(0, len(self.seqs), self.batch_size):
            yield s, min(s + self.batch_size, len(self.seqs))

    def cache_layers(self, layers: list[int]) -> None:
        """Keep the uncalibrated residual entering each of ``layers`` (exact restarts), the
        uncalibrated scores, and which heads of those layers have anything to calibrate on
        each input (a one-layer calibration then runs only those inputs: on the others its
        heads change nothing, so their scores are the uncalibrated ones, exactly)."""
        layers = sorted({int(la) for la in layers} - set(self._cache))
        if not layers:
            return
        store: dict[int, list[Tensor]] = {la: [] for la in layers}
        second: dict[int, list[Tensor]] = {la: [] for la in layers}
        prompts: list[list[int]] = []

        def keep(layer: int) -> Callable:
            def hook(x: Tensor, hook) -> None:
                store[layer].append(x.detach().clone())

            return hook

        def sinks(layer: int) -> Callable:
            def hook(pattern: Tensor, hook) -> None:
                second[layer].append(_second_sink_score(pattern, prompts[-1]))

            return hook

        extra = [(f"blocks.{la}.hook_in", keep(la)) for la in layers]
        extra += [(act_name("pattern", la), sinks(la)) for la in layers]
        self._base = self._run(None, extra_hooks=extra, prompts_log=prompts)
        self._cache.update(store)
        self._second.update({la: torch.cat(v) for la, v in second.items()})

    def logprobs(
        self,
        config: CalibrationConfig | None = None,
        on_calibrated: Callable[[np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """[n_examples, n_choices] log-probabilities (label mode: log-softmax over the choices'
        first-token logits; sequence mode: summed log-probability of each choice's tokens);
        -inf where an example has fewer choices. ``on_calibrated`` receives [n_examples] bool:
        whether any calibrated head changed anything on that example."""
        return self._run(config, on_touched=on_calibrated)

    @torch.no_grad()
    def _run(self, config, extra_hooks=(), on_touched=None, prompts_log=None) -> np.ndarray:
        heads = list(config.heads) if config is not None else []
        layers = {la for la, _ in heads}
        start = min(layers, default=0)
        touched = np.zeros(len(self.rows), dtype=bool)
        needed = None  # sequences a one-layer calibration can change (others: the base scores)
        if len(layers) == 1 and start in self._second and self._base is not None:
            # heads of one layer do not change each other's patterns: each has something to
            # calibrate iff two prompt keys score above the threshold (ACT keeps the first)
            second = self._second[start][:, sorted({h for _, h in heads})]
            needed = (second > config.threshold).any(-1)
            out = self._base.copy()
        else:
            out = np.full((len(self.rows), self.n_choices), -np.inf)
        for b, (s, t) in enumerate(self.batches()):
            idx = list(range(s, t))
            keep = None
            if needed is not None:
                keep = needed[s:t]
                idx = [i for i, k in zip(idx, keep.tolist(), strict=True) if k]
                if not idx:
                    continue
            batch = from_token_ids(self.model, [self.seqs[i] for i in idx])
            if prompts_log is not None:
                prompts_log.append([self.prompt_len[i] for i in idx])
            hooks = list(extra_hooks)
            if heads:

                def record(layer, head_idx, hit, idx=idx):
                    for i, row_hit in zip(idx, hit.any(-1).tolist(), strict=True):
                        touched[self.owner[i][0]] |= row_hit

                hooks += calibration_hooks(
                    self.model,
                    config,
                    batch.lengths,
                    prompt_lengths=[self.prompt_len[i] for i in idx],
                    on_calibrated=record,
                )
            cached = None
            if start > 0 and start in self._cache:
                cached = self._cache[start][b]
                if keep is not None:
                    cached = cached[keep][:, : batch.tokens.shape[1]]
            resid = self._final_residual(batch, hooks, start if cached is not None else 0, cached)
            self._read_out(resid, batch, idx, out)
        if on_touched is not None:
            on_touched(touched)
        return out

    def _read_out(self, resid: Tensor, batch, idx: list[int], out: np.ndarray) -> None:
        """Unembed only the positions that predict choice tokens (not [batch, pos, vocab])."""
        model = self.model
        if self.mode == "label":
            last = torch.tensor([n - 1 for n in batch.lengths])
            rows = torch.arange(len(idx))
            logits = model.unembed(model.ln_final(resid[rows, last][:, None]))[:, 0]
            for k, i in enumerate(idx):
                e = self.owner[i][0]
                first = [ids[0] for ids in self.choice_ids[e]]
                out[e, : len(first)] = logits[k, first].float().log_softmax(-1).numpy()
            return
        ends = zip(idx, batch.lengths, strict=True)
        spans = [range(self.prompt_len[i] - 1, n - 1) for i, n in ends]
        at_rows = [k for k, span in enumerate(spans) for _ in span]
        cols = [p for span in spans for p in span]  # position p predicts token p + 1
        logp = model.unembed(model.ln_final(resid[at_rows, cols])).float().log_softmax(-1)
        targets = batch.tokens[at_rows, [c + 1 for c in cols]]
        token_lp = logp.gather(-1, targets[:, None])[:, 0]
        j = 0
        for span, i in zip(spans, idx, strict=True):
            e, c = self.owner[i]
            out[e, c] = float(token_lp[j : j + len(span)].sum())
            j += len(span)

    def _final_residual(self, batch, hooks, start: int, cached: Tensor | None) -> Tensor:
        """Residual entering the final norm, [batch, pos, d_model]; the pass stops there and,
        for ``start > 0``, begins at layer ``start`` from the cached residual."""
        got: dict[str, Tensor] = {}

        def grab(x, hook):
            got["resid"] = x
            raise _Stop

        def probe(module, args, output):
            self._block_output_is_tuple = isinstance(output, tuple)

        model = self.model
        kwargs: dict = {"attention_mask": batch.attention_mask}
        first_block = model.blocks[0].original_component
        handle = None
        if self._block_output_is_tuple is None and start == 0:
            handle = first_block.register_forward_hook(probe)
        try:
            with model.hooks(fwd_hooks=[*hooks, ("ln_final.hook_in", grab)]):
                if start > 0:
                    with skipped_blocks(model, start, bool(self._block_output_is_tuple)):
                        model(cached, start_at_layer=start, **kwargs)
                else:
                    model(batch.tokens, **kwargs)
        except _Stop:
            pass
        finally:
            if handle is not None:
                handle.remove()
        return got["resid"]

    def margins(self, logp: np.ndarray) -> np.ndarray:
        """[n_examples] log-prob of the correct choice minus the best other one (> 0: right)."""
        right = logp[np.arange(len(logp)), self.labels]
        other = logp.copy()
        other[np.arange(len(logp)), self.labels] = -np.inf
        return right - other.max(-1)

    def predictions(self, logp: np.ndarray) -> np.ndarray:
        return logp.argmax(-1)

    def correct(self, config: CalibrationConfig | None = None) -> np.ndarray:
        return self.predictions(self.logprobs(config)) == self.labels


def _second_sink_score(pattern: Tensor, prompt_lengths: list[int]) -> Tensor:
    """[batch, head]: the second-largest sink score s_j on each prompt (keys of the prompt,
    rows of the prompt). ACT calibrates {j : s_j > threshold} minus its first element, which
    is non-empty exactly when this exceeds the threshold."""
    from interp.calibration import prompt_sink_scores

    s = prompt_sink_scores(pattern, prompt_lengths)  # 0 past the prompt: never above it
    if s.shape[-1] < 2:
        return torch.full(pattern.shape[:2], -1.0)
    return s.topk(2, dim=-1).values[..., 1]


@contextmanager
def skipped_blocks(model: TransformerBridge, n: int, returns_tuple: bool) -> Iterator[None]:
    """Blocks 0 .. n-1 pass their input through unchanged (their work is discarded anyway when
    ``start_at_layer=n`` swaps in a cached residual); restored on exit."""

    def passthrough(hidden_states, *args, **kwargs):
        return (hidden_states,) if returns_tuple else hidden_states

    saved = []
    for block in list(model.blocks)[:n]:
        comp = block.original_component
        saved.append((comp, comp.__dict__.get("forward")))
        comp.forward = passthrough
    try:
        yield
    finally:
        for comp, own in saved:
            if own is None:
                del comp.forward
            else:
                comp.forward = own
