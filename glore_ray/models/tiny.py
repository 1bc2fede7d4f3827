"""Tiny Llama-style causal LMs built from scratch for the tiny world (docs/architecture.md §8)."""

from __future__ import annotations


def tiny_llama_config(model_cfg, tokenizer):
    """A ``LlamaConfig`` of the shape in :class:`~glore_ray.config.ModelConfig`."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_cfg.d_model,
        intermediate_size=model_cfg.d_ff,
        num_hidden_layers=model_cfg.n_layer,
        num_attention_heads=model_cfg.n_head,
        num_key_value_heads=model_cfg.n_head,
        max_position_embeddings=model_cfg.max_len,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def build_tiny_lm(model_cfg, tokenizer, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` (seeded, so tests are reproducible)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(model_cfg, tokenizer))
