"""Static facts about a loaded model (what ``interp info`` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class ModelInfo:
    """Shape facts of a hooked model. ``n_kv_heads`` < ``n_heads`` means grouped-query attention."""

    name: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    n_ctx: int
    n_params: int
    d_vocab: int
    attention: str  # "causal" or "bidirectional"

    def as_dict(self) -> dict:
        return asdict(self)


def n_kv_heads(model: TransformerBridge) -> int:
    """Number of key/value heads (equals ``n_heads`` without grouped-query attention)."""
    kv = getattr(model.cfg, "n_key_value_heads", None)
    return int(kv) if kv else int(model.cfg.n_heads)


def is_causal(model: TransformerBridge) -> bool:
    return getattr(model.cfg, "attention_dir", "causal") != "bidirectional"


def model_info(model: TransformerBridge) -> ModelInfo:
    """Collect layers, heads, kv heads, d_head, context length and parameter count."""
    cfg = model.cfg
    # parameters() yields tied tensors once (SmolLM2 ties embedding and unembedding).
    n_params = sum(p.numel() for p in model.original_model.parameters())
    return ModelInfo(
        name=str(cfg.model_name),
        architecture=str(cfg.architecture),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=n_kv_heads(model),
        d_head=int(cfg.d_head),
        d_model=int(cfg.d_model),
        n_ctx=int(cfg.n_ctx),
        n_params=int(n_params),
        d_vocab=int(cfg.d_vocab),
        attention="causal" if is_causal(model) else "bidirectional",
    )


def model_key(model: TransformerBridge) -> str:
    """What a cached table depends on of the model: its name and the content key of the files
    it was loaded from (``load_model``), so a folder overwritten in place is not the same."""
    from interp.models.meta import model_meta

    return f"{model.cfg.model_name}@{model_meta(model).content_key or 'unknown'}"
