"""A tiny random Llama-style model with grouped-query attention, built in memory.

For tests and examples: no files, no downloads, deterministic given the seed. The tokenizer is
byte-level (every string tokenizes: 256 byte tokens + <pad>, <bos>, <eos>) and, like SmolLM2,
adds no BOS token.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models
from tokenizers.pre_tokenizers import ByteLevel
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer with 259 ids (3 specials, then the 256 byte symbols)."""
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *sorted(ByteLevel.alphabet())])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def tiny_llama(
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_head: int = 16,
    n_ctx: int = 1024,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised ``LlamaForCausalLM`` (eager attention, eval mode, fp32)."""
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
    config = LlamaConfig(
        vocab_size=len(SPECIAL_TOKENS) + 256,
        hidden_size=n_heads * d_head,
        intermediate_size=4 * n_heads * d_head,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=d_head,
        max_position_embeddings=n_ctx,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )  # type: ignore[call-arg]  # a PreTrainedConfig keyword, taken through **kwargs
    config._name_or_path = "tiny"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
