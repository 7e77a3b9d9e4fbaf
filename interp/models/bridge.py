"""Wrap a loaded Hugging Face model and its own tokenizer in a transformer-lens TransformerBridge.

transformer-lens' boot path re-creates the tokenizer with ``add_bos_token=True``; for models
whose tokenizer adds no BOS (SmolLM2) that silently prepends ``<|im_start|>`` to every prompt and
shifts every position. We build the bridge without a tokenizer and attach the model's native
tokenizer untouched, so ``bridge.to_tokens(text)`` equals ``tokenizer(text).input_ids``.
"""

from __future__ import annotations

from typing import Any

from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources._bridge_builder import (
    build_bridge_from_module,
    detect_tokenizer_bos_eos,
)
from transformer_lens.model_bridge.sources._hf_format import determine_architecture_from_hf_config

from interp.errors import ModelLoadError
from interp.models import compat, expressive

compat.apply()


def bridge_from_hf(hf_model: Any, tokenizer: Any, name: str) -> TransformerBridge:
    """Build a ``TransformerBridge`` around ``hf_model`` with ``tokenizer`` attached as is."""
    try:
        architecture = determine_architecture_from_hf_config(hf_model.config)
        bridge = build_bridge_from_module(
            hf_model, architecture, hf_config=hf_model.config, model_name=name
        )
    except (ValueError, KeyError, NotImplementedError) as e:
        raise ModelLoadError(
            f"transformer-lens cannot wrap {name!r} ({type(hf_model).__name__}): {e}"
        ) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    # First assignment on a bridge built without a tokenizer: the setter stores it unchanged.
    bridge.tokenizer = tokenizer
    if hasattr(bridge._driver, "tokenizer"):
        bridge._driver.tokenizer = tokenizer
    prepends_bos, appends_eos = detect_tokenizer_bos_eos(tokenizer)
    bridge.cfg.tokenizer_prepends_bos = prepends_bos
    bridge.cfg.tokenizer_appends_eos = appends_eos
    # Never add a BOS the tokenizer itself would not add.
    bridge.cfg.default_prepend_bos = prepends_bos
    if expressive.attention_kind(hf_model.config) == "ea":
        expressive.patch_bridge(bridge)  # the bridge recomputes attention: make it EA too
    bridge.eval()
    return bridge
