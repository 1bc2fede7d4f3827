"""A training-free step scorer: the student's own mean token log-probability (docs/faithful-world.md).

The baseline a trained reward model has to beat: if ORM/SORM scores rank good steps above bad
ones no better than the generator's own confidence does, the reward model learned nothing the
student did not already know. Step i of a solution scores the mean log-prob of the solution's
tokens up to and including the token that ends line i, at the same step-end positions the reward
models read (:meth:`~glore_ray.models.reward.RewardModel.score_steps`), so the AUCs compare alike.
"""

from __future__ import annotations

import torch

from glore_ray.models.reward import ACCELERATOR_SCORE_BATCH, CPU_SCORE_BATCH
from glore_ray.models.tokenizer import prompt_ids, step_token_positions


@torch.no_grad()
def step_mean_logprobs(model, tokenizer, prompts: list[str], solutions: list[str], batch_size: int | None = None,
                       max_len: int | None = None) -> list[list[float]]:
    """Per step of each solution, the mean log-prob under ``model`` (a causal LM) of the solution's
    tokens through that step's end (steps past ``max_len`` get no score, as with reward models).

    Rows are right-padded here whatever ``tokenizer.padding_side`` says: real tokens then sit at
    positions 0..n-1 in every row, so a row's values do not depend on its batch-mates.
    """
    if len(prompts) != len(solutions):
        raise ValueError(f"{len(prompts)} prompts but {len(solutions)} solutions")
    limit = max_len or getattr(model.config, "max_position_embeddings", 4096)
    device = next(model.parameters()).device
    batch_size = batch_size or (CPU_SCORE_BATCH if device.type == "cpu" else ACCELERATOR_SCORE_BATCH)
    was_training = model.training
    model.eval()
    encoded = [_encode(tokenizer, p, s, limit) for p, s in zip(prompts, solutions)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # similar lengths pad least
    out: list[list[float] | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, scores in zip(chunk, _batch_scores(model, [encoded[i] for i in chunk], tokenizer.pad_token_id, device)):
            out[i] = scores
    model.train(was_training)
    return out


def _encode(tokenizer, prompt: str, solution: str, limit: int) -> tuple[list[int], int, list[int]]:
    """(prompt + solution ids cut at ``limit``, the prompt's length, each kept step's end position),
    tokenised exactly as the reward models and the generator see the text."""
    p = prompt_ids(tokenizer, prompt)
    if not p:
        raise ValueError("step_mean_logprobs: an empty prompt leaves the first solution token unpredicted")
    ids, pos = step_token_positions(tokenizer, solution)
    return (p + ids)[:limit], len(p), [len(p) + q for q in pos if len(p) + q < limit]


def _batch_scores(model, encoded: list[tuple[list[int], int, list[int]]], pad_id: int | None, device) -> list[list[float]]:
    seqs = [seq for seq, _, _ in encoded]
    width = max(len(x) for x in seqs)
    pad = pad_id or 0
    ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=device)  # [B, T]
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=device)  # [B, T]
    logits = model(input_ids=ids, attention_mask=mask).logits.float()  # [B, T, V]
    # Token t is predicted at position t - 1: token_lp[:, t - 1] = log p(ids[:, t] | ids[:, :t]).
    token_lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1).cpu()  # [B, T-1]
    out = []
    for b, (_, n_prompt, ends) in enumerate(encoded):
        running = torch.cumsum(token_lp[b, n_prompt - 1:], dim=0)  # [T - n_prompt]: solution tokens 0..
        out.append([float(running[e - n_prompt]) / (e - n_prompt + 1) for e in ends])
    return out
