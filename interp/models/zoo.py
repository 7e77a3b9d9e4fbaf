"""Small randomly initialised models of each architecture family a researcher is likely to bring,
written as local Hugging Face folders, and their parity with the model's own eager attention.

``build_folder(family, folder)`` writes a 2-layer random model of ``family`` (no download:
the config is built here) with the byte-level tiny tokenizer. ``parity(family)`` loads it
through ``interp.load_model`` and compares, on one text, with the plain Hugging Face model in
eager attention: logits, every layer's per-head pattern, ``hook_z`` (the input of the output
projection), GQA key expansion, the streaming statistics (``model_attention_stats`` against the
same statistics read off the HF patterns) and KV-cached greedy decoding (against HF
``generate``). A family either matches within ``TOLERANCE`` or a step is refused with a message
(``Parity.refused``); ``scripts/family_matrix.py`` writes the table of docs/families.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError

VOCAB = 259  # the tiny byte-level tokenizer's size
TOLERANCE = 1e-4
TEXT = "the cat sat on the mat and the dog sat on the log; the cat sat on the"
_SMALL: dict[str, Any] = dict(vocab_size=VOCAB, max_position_embeddings=256)
_GQA = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128)  # fmt: skip


@dataclass(frozen=True)
class Family:
    """``config()`` builds the HF config; ``o_proj(model, layer)`` is the module whose input
    is the layer's per-head outputs (``hook_z``) concatenated; ``k_proj`` the key projection
    (GQA families); ``features`` says what the config exercises."""

    config: Callable[[], Any]
    o_proj: Callable[[Any, int], Any]
    features: str
    k_proj: Callable[[Any, int], Any] | None = None
    masked_lm: bool = False


def _layers(model: Any) -> Any:
    return model.model.layers


def _llama_like(cls_name: str, features: str, **extra: Any) -> Family:
    def config() -> Any:
        import transformers

        return getattr(transformers, cls_name)(**_SMALL, **{**_GQA, **extra})

    return Family(
        config, lambda m, la: _layers(m)[la].self_attn.o_proj, features,
        k_proj=lambda m, la: _layers(m)[la].self_attn.k_proj,
    )  # fmt: skip


def _gpt2() -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256)


def _neox() -> Any:
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        **_SMALL, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, rotary_pct=0.25, use_parallel_residual=True,
    )  # type: ignore[call-arg]  # rotary_pct is read from **kwargs  # fmt: skip


def _phi() -> Any:
    from transformers import PhiConfig

    return PhiConfig(**_SMALL, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, partial_rotary_factor=0.5)  # type: ignore[call-arg]  # fmt: skip


def _bert() -> Any:
    from transformers import BertConfig

    return BertConfig(**_SMALL, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128)  # fmt: skip


FAMILIES: dict[str, Family] = {
    "gpt2": Family(_gpt2, lambda m, la: m.transformer.h[la].attn.c_proj,
                   "learned positions, fused qkv (Conv1D), LayerNorm, tied embeddings"),
    "gpt_neox": Family(_neox, lambda m, la: m.gpt_neox.layers[la].attention.dense,
                       "Pythia: partial rotary (25 %), fused qkv, parallel attention/MLP"),
    "llama": _llama_like("LlamaConfig", "GQA 4:2, rotary, RMSNorm, SwiGLU"),
    "llama3": _llama_like(
        "LlamaConfig", "GQA, llama3 rotary scaling (factor 8, theta 5e5)",
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    ),
    "mistral": _llama_like("MistralConfig", "GQA, sliding window 8 (< the text)",
                           sliding_window=8),
    "qwen2": _llama_like("Qwen2Config", "GQA, qkv bias, rotary"),
    "qwen3": _llama_like("Qwen3Config", "GQA, RMSNorm on q and k per head", head_dim=16),
    "gemma": _llama_like("GemmaConfig", "GQA, head_dim 16, GeGLU, scaled embeddings",
                         head_dim=16),
    "gemma2": _llama_like("Gemma2Config", "GQA, soft-capped scores (50), alternating "
                          "sliding window 8", head_dim=16, sliding_window=8),
    "phi": Family(_phi, lambda m, la: m.model.layers[la].self_attn.dense,
                  "partial rotary (50 %), parallel attention/MLP, biases"),
    "olmo": _llama_like("OlmoConfig", "non-parametric LayerNorm, rotary (MHA)",
                        num_key_value_heads=4),
    "bert": Family(_bert, lambda m, la: m.bert.encoder.layer[la].attention.output.dense,
                   "encoder: bidirectional, absolute positions, post-LN", masked_lm=True),
}  # fmt: skip


def _hf_class(family: Family) -> Any:
    import transformers

    return transformers.BertForMaskedLM if family.masked_lm else transformers.AutoModelForCausalLM


def build_folder(name: str, folder: str | Path, seed: int = 0) -> Path:
    """A random 2-layer model of family ``name`` saved as a HF folder with the tiny tokenizer."""
    from interp.models.tiny import tiny_tokenizer

    family = FAMILIES[name]
    config = family.config()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        cls = _hf_class(family)
        model = cls(config) if family.masked_lm else cls.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@dataclass
class Parity:
    """Largest absolute errors against the HF eager model (NaN: not run) and refusals."""

    family: str
    features: str
    causal: bool = True
    logits: float = float("nan")
    logits_rel: float = float("nan")
    pattern: float = float("nan")
    z: float = float("nan")
    gqa_k: float = float("nan")
    stats: float = float("nan")
    decode_equal: bool | None = None
    refused: dict[str, str] = field(default_factory=dict)

    def exact(self, tol: float = TOLERANCE) -> bool:
        errors = [self.logits, self.pattern, self.z, self.gqa_k, self.stats]
        return all(e != e or e <= tol for e in errors) and self.decode_equal is not False


def _max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@torch.no_grad()
def parity(name: str, folder: str | Path | None = None) -> Parity:
    """Compare family ``name`` loaded through interp with its own HF eager model (module
    docstring). A fresh temporary folder is built unless ``folder`` already holds one."""
    import interp
    from interp.attention import run_heads
    from interp.generate import greedy_decode
    from interp.models.info import is_causal
    from interp.stats import dense
    from interp.stats.capture import model_attention_stats

    family = FAMILIES[name]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder) if folder else build_folder(name, Path(tmp) / name)
        model = interp.load_model(str(folder))
        hf = _hf_class(family).from_pretrained(folder, attn_implementation="eager").eval()
    row = Parity(name, family.features, causal=is_causal(model))
    tok = model.tokenizer
    ids = tok(TEXT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    n_layers = int(model.cfg.n_layers)

    z_ref: dict[int, torch.Tensor] = {}
    handles = [
        family.o_proj(hf, la).register_forward_pre_hook(
            lambda _m, args, la=la: z_ref.__setitem__(la, args[0])
        )
        for la in range(n_layers)
    ]
    k_ref: dict[int, torch.Tensor] = {}
    if family.k_proj is not None:
        handles += [
            family.k_proj(hf, la).register_forward_hook(
                lambda _m, _a, out, la=la: k_ref.__setitem__(la, out)
            )
            for la in range(n_layers)
        ]
    try:
        ref = hf(ids, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    logits = model(ids)
    row.logits = _max(logits, ref.logits)
    row.logits_rel = row.logits / float(ref.logits.abs().max())
    run = run_heads(model, [TEXT], hooks=["pattern", "z", "k"])
    row.pattern = max(_max(run.pattern(la)[0], ref.attentions[la][0]) for la in range(n_layers))
    n_heads = int(model.cfg.n_heads)
    row.z = max(
        _max(run["z", la][0], z_ref[la][0].reshape(ids.shape[1], n_heads, -1))
        for la in range(n_layers)
    )
    if k_ref:
        kv = int(getattr(hf.config, "num_key_value_heads", n_heads))
        row.gqa_k = max(
            _max(run["k", la][0],
                 k_ref[la][0].reshape(ids.shape[1], kv, -1).repeat_interleave(n_heads // kv, 1))
            for la in range(n_layers)
        )  # fmt: skip
    try:
        stats = model_attention_stats(model, [TEXT])[0]
        errs = []
        for la in range(n_layers):
            a = ref.attentions[la].float()
            errs += [
                _max(stats[la].col_sum, a.sum(-2)),
                _max(stats[la].entropy, torch.special.entr(a).sum(-1)),
                _max(stats[la].sink_mass, a[..., 0]),
                _max(stats[la].mean_distance, dense.windowed_distance(a)),
            ]
        row.stats = max(errs)
    except InterpError as e:
        row.refused["streaming statistics"] = str(e)
    if row.causal:
        prompt = ids[0, :12].tolist()
        ours = greedy_decode(model, prompt, max_new_tokens=6)
        theirs = hf.generate(
            torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
            pad_token_id=tok.pad_token_id,
        )[0, len(prompt):].tolist()  # fmt: skip
        row.decode_equal = ours == theirs
    else:
        try:
            greedy_decode(model, ids[0, :4].tolist(), max_new_tokens=1)
        except InterpError as e:
            row.refused["generation"] = str(e)
    return row
