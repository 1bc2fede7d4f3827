"""The training-free baseline's scorer (glore_ray/models/logprob.py) on a tiny random Llama."""

from __future__ import annotations

import pytest
import torch

from glore_ray.models.logprob import step_mean_logprobs
from glore_ray.models.tokenizer import prompt_ids, step_token_positions

PROMPTS = ["Q: Ava has 12 apples, then gets 5 more. How many apples now?\nA: ",
           "Q: Ben has 7 coins.\nA: ",
           "Q: Cora has 30 stamps, then loses 4, then doubles them. How many stamps now?\nA: "]
SOLUTIONS = ["12 + 5 = 17\n#### 17", "#### 7", "30 - 4 = 26\n26 * 2 = 52\n#### 52"]


@pytest.fixture(scope="module")
def tiny_lm(tiny_tokenizer):
    from glore_ray.config import ModelConfig
    from glore_ray.models.tiny import build_tiny_lm

    return build_tiny_lm(ModelConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, max_len=256), tiny_tokenizer).eval()


def _direct(model, tokenizer, prompt, solution):
    """One unpadded forward pass, each token's log-prob read off the logits one by one."""
    p = prompt_ids(tokenizer, prompt)
    ids, ends = step_token_positions(tokenizer, solution)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + ids])).logits[0]  # [T, V]
    lps = [float(torch.log_softmax(logits[len(p) + j - 1], -1)[tok]) for j, tok in enumerate(ids)]
    return [sum(lps[:e + 1]) / (e + 1) for e in ends]


def test_step_scores_equal_a_direct_computation_from_the_logits(tiny_lm, tiny_tokenizer):
    got = step_mean_logprobs(tiny_lm, tiny_tokenizer, PROMPTS[:1], SOLUTIONS[:1])
    want = _direct(tiny_lm, tiny_tokenizer, PROMPTS[0], SOLUTIONS[0])
    assert len(got[0]) == 2 and got[0] == pytest.approx(want, abs=1e-5)
    assert all(s < 0 for s in got[0])  # a log-prob, not a probability


def test_batching_and_padding_side_do_not_change_the_scores(tiny_lm, tiny_tokenizer):
    one_by_one = [step_mean_logprobs(tiny_lm, tiny_tokenizer, [p], [s])[0] for p, s in zip(PROMPTS, SOLUTIONS)]
    assert [len(s) for s in one_by_one] == [2, 1, 3]
    side = tiny_tokenizer.padding_side
    try:
        for padding_side in ("left", "right"):
            tiny_tokenizer.padding_side = padding_side
            batched = step_mean_logprobs(tiny_lm, tiny_tokenizer, PROMPTS, SOLUTIONS, batch_size=3)
            for got, want in zip(batched, one_by_one, strict=True):
                assert got == pytest.approx(want, abs=1e-5)
    finally:
        tiny_tokenizer.padding_side = side
    assert one_by_one[2] == pytest.approx(_direct(tiny_lm, tiny_tokenizer, PROMPTS[2], SOLUTIONS[2]), abs=1e-5)


def test_steps_past_max_len_get_no_score_and_lengths_must_match(tiny_lm, tiny_tokenizer):
    width = len(prompt_ids(tiny_tokenizer, PROMPTS[2])) + step_token_positions(tiny_tokenizer, SOLUTIONS[2])[1][1]
    full = step_mean_logprobs(tiny_lm, tiny_tokenizer, PROMPTS[2:], SOLUTIONS[2:])[0]
    cut = step_mean_logprobs(tiny_lm, tiny_tokenizer, PROMPTS[2:], SOLUTIONS[2:], max_len=width)[0]
    assert cut == pytest.approx(full[:1], abs=1e-5)  # step 2's newline sits at index `width`: cut off
    with pytest.raises(ValueError, match="2 prompts but 1 solutions"):
        step_mean_logprobs(tiny_lm, tiny_tokenizer, PROMPTS[:2], SOLUTIONS[:1])
