"""Reward models: a causal-LM backbone plus a scalar head read at each step's newline (docs/architecture.md §3).

The network is transformers' ``*ForTokenClassification`` with one label: the backbone weights are
the causal LM's, ``score`` is the scalar head, and the whole thing saves and reloads from one
directory in HF format (``AutoModelForTokenClassification.from_pretrained`` works on it too).
The score of step i is the head's logit at the token covering the newline that ends line i; the
ORM, balanced ORM and SORM are all this model, trained with BCE on those positions (paper 3.1).
"""

from __future__ import annotations

import torch
from torch import nn

from glore_ray.models.batching import length_groups
from glore_ray.models.tokenizer import load_tokenizer, prompt_ids, step_token_positions

CPU_SCORE_BATCH = 4  # solutions per forward pass when scoring (score_steps says why)
ACCELERATOR_SCORE_BATCH = 32


def _token_classifier(path: str, dtype=None, **config_overrides):
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(str(path))
    if not config_overrides:  # a saved reward model, not a backbone for a new head
        check_reward_config(config, path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    return AutoModelForTokenClassification.from_pretrained(str(path), config=config, **kwargs)


class RewardModel(nn.Module):
    """A step classifier. ``forward`` gives per-token logits [B, T]; scores are sigmoid(logit)."""

    def __init__(self, model, tokenizer=None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.logits.squeeze(-1)  # [B, T]

    # ---------------------------------------------------------------------------------- io

    @classmethod
    def from_pretrained(cls, path, device: str = "cpu", dtype=None) -> RewardModel:
        model = _token_classifier(path, dtype=dtype).to(device).eval()
        return cls(model, load_tokenizer(path))

    @classmethod
    def from_causal_lm(cls, path, seed: int = 0, device: str = "cpu", dtype=None) -> RewardModel:
        """Backbone from a causal-LM checkpoint, a fresh (seeded) scalar head. Dropout off in the
        head: the paper's RMs are fine-tuned LMs, and a noisy head only slows tiny runs down."""
        torch.manual_seed(seed)
        model = _token_classifier(path, dtype=dtype, num_labels=1, classifier_dropout=0.0)
        tokenizer = load_tokenizer(path)
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        return cls(model.to(device), tokenizer)

    def save_pretrained(self, path, state_dict: dict | None = None) -> None:
        self.model.save_pretrained(str(path), state_dict=state_dict)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(path))

    # ---------------------------------------------------------------------------------- scoring

    @torch.no_grad()
    def score_steps(self, prompts: list[str], solutions: list[str], batch_size: int | None = None,
                    max_len: int | None = None, call_cost: int | None = None) -> list[list[float]]:
        """Sigmoid probability per step of each solution (steps past ``max_len`` get no score).

        ``batch_size`` defaults to the device's: on CPU a forward pass costs its padded FLOPs and
        little per call, so small chunks of similar length are cheapest; a GPU wants wide batches.
        ``call_cost`` (the service's, on CPU) cuts the length-sorted solutions by
        :func:`~glore_ray.models.batching.length_groups` instead of fixed chunks (bench/serve_load.py
        measures the service both ways)."""
        if len(prompts) != len(solutions):
            raise ValueError(f"{len(prompts)} prompts but {len(solutions)} solutions")
        if self.tokenizer is None:
            raise ValueError("RewardModel has no tokenizer; load it with from_pretrained")
        limit = max_len or getattr(self.config, "max_position_embeddings", 4096)
        device = next(self.parameters()).device
        batch_size = batch_size or (CPU_SCORE_BATCH if device.type == "cpu" else ACCELERATOR_SCORE_BATCH)
        was_training = self.training
        self.eval()
        encoded = [self._encode(p, s, limit) for p, s in zip(prompts, solutions)]
        # Chunks of similar length: a forward pass costs its padded width on CPU, and a mixed
        # batch of prompts is about 70% real tokens. The order back is the callers'.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        if call_cost is None:
            cuts = [(s, s + batch_size) for s in range(0, len(order), batch_size)]
        else:
            cuts = length_groups([len(encoded[i][0]) for i in order], call_cost)
        out: list[list[float] | None] = [None] * len(encoded)
        for start, end in cuts:
            chunk = order[start:end]
            for i, scores in zip(chunk, self._score_batch([encoded[i] for i in chunk], device)):
                out[i] = scores
        self.train(was_training)
        return out

    def _encode(self, prompt: str, solution: str, limit: int) -> tuple[list[int], list[int]]:
        """Token ids of prompt + solution (cut at ``limit``) and the position of each step's end."""
        p = prompt_ids(self.tokenizer, prompt)
        ids, pos = step_token_positions(self.tokenizer, solution)
        return (p + ids)[:limit], [len(p) + q for q in pos if len(p) + q < limit]

    def _score_batch(self, encoded: list[tuple[list[int], list[int]]], device) -> list[list[float]]:
        seqs = [seq for seq, _ in encoded]
        width = max(len(x) for x in seqs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=device)  # [B, T]
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=device)
        probs = torch.sigmoid(self(ids, mask).float()).cpu()  # [B, T]
        return [[float(probs[b, q]) for q in pos] for b, (_, pos) in enumerate(encoded)]



def check_reward_config(config, path) -> None:
    """Refuse a checkpoint that is not a one-logit token classifier. transformers would load a
    causal LM here anyway, with a random head and a vocabulary-wide logit per token, and the
    first score would fail far from the cause (``only one element tensors can be converted``)."""
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ValueError(
            f"{path}: not a reward model checkpoint (architectures {architectures or 'not set'} in its "
            "config.json; expected a *ForTokenClassification saved by reward-model training). A causal LM "
            "(e.g. the student) becomes a reward model by training one: jobs/train_rm.py, or "
            "RewardModel.from_causal_lm for a fresh head")
    if config.num_labels != 1:
        raise ValueError(f"{path}: a reward model has one logit per token (num_labels 1), "
                         f"this checkpoint has {config.num_labels}")


def is_reward_checkpoint(path) -> bool:
    """Does the HF directory hold a reward model (a token classifier) rather than a causal LM?"""
    import json
    from pathlib import Path

    config = json.loads((Path(path) / "config.json").read_text())
    return any(a.endswith("ForTokenClassification") for a in config.get("architectures") or [])
