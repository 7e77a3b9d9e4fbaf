"""Patch head outputs by resuming the forward at the patched layer (activation patching's fast
path; ``interp.ablation.patching`` picks it).

Patching head h of layer L changes nothing below L, so each patched run starts from the clean
run's residual entering L (cached once) instead of from the tokens, and all heads of a layer are
patched in one batched forward (copy b of the batch patches head b). It runs the bridge's
weights as the plain Hugging Face model (``interp.stats.capture.plain_model``: SDPA attention,
no hook points): a head's output ``hook_z`` is the input of the layer's output projection, whose
slice ``[h * d_head, (h + 1) * d_head)`` is replaced by the donor run's. With
``last_token_only`` the unembedding runs at each prompt's last real token only, and the metric
sees those logits broadcast over positions (it must read only the last token).

``resume_runner`` returns None where this cannot be done exactly: no plain model, no
``layers`` stack or output projection found, or a self-check fails (resuming at the middle layer
without a patch must give the clean logits: models that scale or add to ``inputs_embeds``,
e.g. Gemma or GPT-2, fail it). The caller then uses the bridge path.
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InputError
from interp.tokens import TokenBatch

_ACTIVE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "interp_resume_patch", default=None
)


class ResumeRunner:
    """Patched forwards of one (base, donor) pair from cached layer inputs."""

    def __init__(self, plain: Any, base_model: Any, o_proj: list[nn.Module]) -> None:
        self.plain, self.base_model, self.o_proj = plain, base_model, o_proj
        self.base_inputs: dict[int, torch.Tensor] = {}  # the checked batch's layer inputs
        self.layers = base_model.layers
        self.device = next(plain.parameters()).device
        self._handles = [m.register_forward_pre_hook(self._o_hook(i)) for i, m in enumerate(o_proj)]
        self._handles += [
            layer.register_forward_pre_hook(self._layer_hook(i))
            for i, layer in enumerate(self.layers)
        ]

    def close(self) -> None:
        for h in self._handles:
            h.remove()

    # hooks on shared modules: they act only inside this context's ``_ACTIVE`` state
    def _o_hook(self, layer: int) -> Callable:
        def hook(module, args):
            state = _ACTIVE.get()
            if state is None or state.get("runner") is not self:
                return None
            x = args[0]
            if "record_z" in state:
                state["record_z"][layer] = x.detach().clone()
            patch = state.get("patch")
            if patch is not None and patch[0] == layer:
                return (patch[1](x), *args[1:])
            return None

        return hook

    def _layer_hook(self, layer: int) -> Callable:
        def hook(module, args, kwargs=None):
            state = _ACTIVE.get()
            if state is not None and state.get("runner") is self and "record_in" in state:
                state["record_in"][layer] = args[0].detach().clone()

        return hook

    def _run(
        self, batch: TokenBatch, state: dict, start: int, resid: torch.Tensor | None, copies: int
    ) -> Any:
        mask = batch.attention_mask.to(self.device).repeat(copies, 1)
        state["runner"] = self
        token = _ACTIVE.set(state)
        try:
            if resid is None:
                ids = batch.tokens.to(self.device).repeat(copies, 1)
                return self.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
            view = copy.copy(self.base_model)  # the shared model is never modified
            view._modules = dict(self.base_model._modules)
            view._modules["layers"] = nn.ModuleList(list(self.layers)[start:])
            return view(inputs_embeds=resid.repeat(copies, 1, 1), attention_mask=mask,
                        use_cache=False)  # fmt: skip
        finally:
            _ACTIVE.reset(token)

    def record(
        self, batch: TokenBatch
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
        """One full run of ``batch``: each layer's input, each output projection's input
        (``hook_z`` flattened), and the logits."""
        state: dict = {"record_in": {}, "record_z": {}}
        out = self._run(batch, state, 0, None, 1)
        logits = self._logits(batch, out.last_hidden_state, False)
        return state["record_in"], state["record_z"], logits

    def _logits(self, batch: TokenBatch, hidden: torch.Tensor, last_only: bool) -> torch.Tensor:
        head = self.plain.get_output_embeddings()
        if not last_only:
            return head(hidden)
        b = len(batch.lengths)
        last = torch.tensor(batch.lengths, device=hidden.device) - 1
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), last.repeat(
            hidden.shape[0] // b)]  # fmt: skip
        return head(rows)[:, None, :].expand(-1, hidden.shape[1], -1)

    def patched_logits(
        self,
        batch: TokenBatch,
        layer: int,
        resid: torch.Tensor,
        donor_z: torch.Tensor,
        heads: Sequence[int],
        d_head: int,
        *,
        last_token_only: bool,
    ) -> list[torch.Tensor]:
        """Logits of the base batch with head ``heads[c]``'s output at ``layer`` taken from
        ``donor_z`` in copy c, resuming from ``resid`` (the base run's input of ``layer``)."""
        b = resid.shape[0]

        def patch(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            for c, h in enumerate(heads):
                cols = slice(h * d_head, (h + 1) * d_head)
                x[c * b : (c + 1) * b, :, cols] = donor_z[:, :, cols].to(x)
            return x

        state = {"patch": (layer, patch)}
        out = self._run(batch, state, layer, resid, len(heads))
        logits = self._logits(batch, out.last_hidden_state, last_token_only)
        return list(logits.split(b))


def _output_projections(model: TransformerBridge, plain: Any) -> list[nn.Module] | None:
    """Each layer's output projection in the plain model: the module whose weight is the
    bridge's ``blocks[l].attn.o`` weight (shared tensors)."""
    from interp.stats.capture import _unwrap

    by_weight = {id(getattr(m, "weight", None)): m for m in plain.modules()}
    found = []
    for block in model.blocks:
        o = getattr(getattr(block, "attn", None), "o", None)
        weight = getattr(_unwrap(o), "weight", None) if o is not None else None
        if weight is None or id(weight) not in by_weight:
            return None
        found.append(by_weight[id(weight)])
    return found


def resume_runner(
    model: TransformerBridge,
    base: TokenBatch,
    reference_logits: torch.Tensor,
    metric: Callable[[torch.Tensor], float],
) -> ResumeRunner | None:
    """A runner for ``base`` (its layer inputs in ``base_inputs``), or None where resuming is
    not exact for this model (see the module docstring). ``reference_logits``: the bridge's
    logits of ``base``; the runner's own full run and a resumed run from the middle layer must
    give the same metric."""
    from interp.stats.capture import _base, plain_model

    try:
        plain = plain_model(model)
    except InputError:
        return None
    base_model = _base(plain)
    o_proj = _output_projections(model, plain)
    if o_proj is None or not isinstance(getattr(base_model, "layers", None), nn.ModuleList):
        return None
    if len(o_proj) != len(base_model.layers):
        return None
    runner = ResumeRunner(plain, base_model, o_proj)
    try:
        with torch.no_grad():
            inputs, _, logits = runner.record(base)
            mid = len(o_proj) // 2
            resumed = runner._run(base, {}, mid, inputs[mid], 1)
            again = runner._logits(base, resumed.last_hidden_state, False)
        ref = metric(reference_logits)
        tol = 1e-4 * max(1.0, abs(ref))
        if abs(metric(logits) - ref) > tol or abs(metric(again) - ref) > tol:
            runner.close()
            return None
        runner.base_inputs = inputs  # what the patched runs resume from
    except Exception:  # noqa: BLE001 - any failure means: use the bridge path
        runner.close()
        return None
    return runner
