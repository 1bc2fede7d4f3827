"""Objectives and the learning-rate schedule (glore_ray/training/losses.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from glore_ray.training.data import IGNORE_INDEX
from glore_ray.training.losses import cosine_lr, masked_lm_loss, pairwise_loss, step_bce_loss, total_optimizer_steps


def test_lm_loss_counts_target_tokens_only():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 1]])
    expected = F.cross_entropy(logits[0, 1:4], torch.tensor([3, 4, 1]))
    assert torch.allclose(masked_lm_loss(logits, labels), expected)
    changed = logits.clone()
    changed[0, 0] += 5.0  # predicts a prompt token: must not matter
    assert torch.allclose(masked_lm_loss(changed, labels), expected)


def test_step_bce_reads_positions_and_ignores_minus_one():
    scores = torch.tensor([[0.0, 2.0, -1.0, 3.0]])
    loss, correct, counted = step_bce_loss(scores, torch.tensor([[1, 2, 3]]), torch.tensor([[1, 0, -1]]))
    expected = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(-1.0))) / 2
    assert torch.allclose(loss, expected) and (correct, counted) == (2, 2)


def test_step_bce_trains_soft_targets_and_counts_the_side_of_one_half():
    scores = torch.tensor([[0.0, 2.0, -1.0, 3.0]])
    targets = torch.tensor([[0.25, 0.75, -1.0]])
    loss, correct, counted = step_bce_loss(scores, torch.tensor([[1, 2, 3]]), targets)
    expected = F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([0.25, 0.75]))
    assert torch.allclose(loss, expected)
    assert (correct, counted) == (0, 2)  # 2.0 says "good" to a 0.25 step, -1.0 "bad" to a 0.75 one
    # The soft loss is smallest where the probability equals the target.
    at_target = step_bce_loss(torch.tensor([[0.0, math.log(1 / 3)]]), torch.tensor([[1]]), torch.tensor([[0.25]]))[0]
    assert at_target < step_bce_loss(torch.tensor([[0.0, -2.0]]), torch.tensor([[1]]), torch.tensor([[0.25]]))[0]


def test_pairwise_loss_is_minus_log_sigmoid_of_the_margin():
    scores = torch.tensor([[0.0, 3.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])  # chosen rows first
    positions = torch.tensor([[1], [1], [1], [1]])
    loss, wins, pairs = pairwise_loss(scores, positions)
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    assert abs(float(loss) - expected) < 1e-6 and (wins, pairs) == (1, 2)


def test_cosine_schedule_warms_up_then_decays_to_lr_min():
    lrs = [cosine_lr(s, 100, 2e-5, 2e-7, 0.03) for s in range(100)]
    assert lrs[:3] == [2e-5 / 3, 2 * 2e-5 / 3, 2e-5]
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    assert math.isclose(lrs[-1], 2e-7) and min(lrs) >= 2e-7


def test_total_steps_rounds_up():
    assert total_optimizer_steps(1, 257, 256) == 2 and total_optimizer_steps(0.5, 10, 128) == 1
