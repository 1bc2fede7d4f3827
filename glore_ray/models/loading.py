"""Load causal LMs and reward models from HF directories (or hub ids); tokenizers: ``models.tokenizer``."""

from __future__ import annotations

from glore_ray.models.tokenizer import load_tokenizer


def _dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_causal_lm(path, device: str = "cpu", dtype=None, tokenizer=None):
    """``AutoModelForCausalLM`` at ``path``; embeddings grow to the tokenizer (e.g. after [BAD])."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": _dtype(dtype)} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model.to(device)


def load_reward_model(path, device: str = "cpu", dtype=None):
    """A :class:`~glore_ray.models.reward.RewardModel` saved by training, in eval mode."""
    from glore_ray.models.reward import RewardModel

    return RewardModel.from_pretrained(path, device=device, dtype=_dtype(dtype))
