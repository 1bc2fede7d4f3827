"""Tokenizers, tiny causal LMs and reward models (HF format on disk)."""
