"""The three training objectives (docs/architecture.md §6) and the learning-rate schedule (paper Table 4).

Each loss takes model outputs and a collated batch (see :func:`glore_ray.training.data.collate`)
and returns a scalar tensor plus the numbers a metric line needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from glore_ray.training.data import IGNORE_INDEX


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy on target tokens only (student SFT/EI, refiners).

    logits [B, T, V], labels [B, T] with IGNORE_INDEX off-target; position t predicts labels[t + 1].
    """
    shift_logits = logits[:, :-1].float()  # [B, T-1, V]
    shift_labels = labels[:, 1:]  # [B, T-1]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def gather_steps(scores: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """scores [B, T], positions [B, S] -> step scores [B, S]."""
    return torch.gather(scores, 1, positions)


def step_bce_loss(scores: torch.Tensor, positions: torch.Tensor, step_labels: torch.Tensor):
    """BCE on step positions (ORM/SORM, docs/architecture.md §3); label -1 is ignored (padding or SORM
    balance); a label in (0, 1) is a soft target (soft SORM labels).

    scores [B, T] (logits), positions/step_labels [B, S]. Returns (loss, correct, counted).
    """
    logits = gather_steps(scores.float(), positions)  # [B, S]
    keep = step_labels >= 0
    target = step_labels.clamp(min=0).float()  # a soft target (a success share) trains the same BCE
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (per * keep).sum() / keep.sum().clamp(min=1)
    correct = (((logits > 0) == (target >= 0.5)) & keep).sum()  # soft: the side of 0.5 it falls on
    return loss, int(correct), int(keep.sum())


def pairwise_loss(scores: torch.Tensor, positions: torch.Tensor):
    """-log sigmoid(r_chosen - r_rejected) (contrastive RM, paper App. F).

    scores [2B, T] with chosen rows first, positions [2B, 1] (last step). Returns (loss, wins, pairs).
    """
    rewards = gather_steps(scores.float(), positions).squeeze(1)  # [2B]
    chosen, rejected = rewards.chunk(2)
    margin = chosen - rejected
    return -F.logsigmoid(margin).mean(), int((margin > 0).sum()), int(margin.numel())


def cosine_lr(step: int, total: int, lr_max: float, lr_min: float, warmup_frac: float) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total``: linear warm-up over
    ``ceil(warmup_frac * total)`` steps, then cosine from lr_max down to lr_min at the last step.

    >>> cosine_lr(0, 10, 1.0, 0.0, 0.0), cosine_lr(9, 10, 1.0, 0.1, 0.0)
    (1.0, 0.1)
    >>> round(cosine_lr(0, 10, 1.0, 0.0, 0.2), 3)
    0.5
    """
    warmup = math.ceil(warmup_frac * total)
    if step < warmup:
        return lr_max * (step + 1) / warmup
    span = max(1, total - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * progress))


def total_optimizer_steps(epochs: float, rows: int, batch_size: int) -> int:
    """ceil(epochs * rows / batch_size), at least 1.

    >>> total_optimizer_steps(4, 1000, 128)
    32
    """
    return max(1, math.ceil(epochs * rows / batch_size))
