"""Load causal LMs, tokenizers and reward models from HF directories (or hub ids)."""

from __future__ import annotations

from glore_ray.models.tokenizer import BAD_TOKEN, add_bad_token


def _dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_tokenizer(path):
    """The tokenizer at ``path``, with ``[BAD]`` (the local refiner's marker, paper 3.1 step 3)
    as a special token and a pad token set."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if BAD_TOKEN not in tok.get_vocab() or tok.pad_token is None:
        add_bad_token(tok)
    return tok


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
