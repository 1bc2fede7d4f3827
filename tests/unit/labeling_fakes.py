"""Fakes for the labeling tests: a noisy tiny-world "student" and a deterministic verifier whose
rollout depends only on (question, prefix text, sample index), like a per-request seeded generator."""

from __future__ import annotations

import random

from glore_ray.labeling.sorm import VerifyRequest, VerifyResult
from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import split_steps, step_result
from glore_ray.tasks.tiny_oracle import prefix_is_valid
from glore_ray.tasks.tiny_world import OPS, generate_problems


def noisy_solution(problem, rng: random.Random, p_slip=0.15, p_wrong_op=0.1, p_bad_answer=0.05) -> str:
    """The reference computation with arithmetic slips and wrong operations carried forward."""
    values, lines = {}, []
    for idx, node in enumerate(problem.nodes):
        a, b = (o.const if o.ref is None else values[o.ref] for o in (node.left, node.right))
        op = node.op
        if rng.random() < p_wrong_op:
            op = rng.choice([o for o in OPS if o != op])
        c = OPS[op](a, b)
        if rng.random() < p_slip:
            c += rng.choice([-2, -1, 1, 2])
        values[idx] = c
        lines.append(f"{a} {op} {b} = {c}")
    answer = values[len(problem.nodes) - 1] + (1 if rng.random() < p_bad_answer else 0)
    return "\n".join(lines + [f"#### {answer}"])


def make_samples(n_problems: int, per_problem: int, seed: int = 0):
    problems = generate_problems(n_problems, seed=seed, split="train")
    rng = random.Random(seed)
    samples = []
    for p in problems:
        for _ in range(per_problem):
            text = noisy_solution(p, rng)
            samples.append({"question_id": p.id, "question": p.question, "prompt": f"Q: {p.question}\nA: ", "text": text,
                            "correct": is_correct(text, p.answer), "answer": p.answer})
    return problems, samples


class FakeVerifier:
    """Valid prefixes succeed consistently with ``p_good``; every prefix sometimes reaches the
    answer without using R_i (inconsistent) and, rarely, an invalid one succeeds (false positive)."""

    def __init__(self, problems, p_good=0.25, p_inconsistent=0.1, p_lucky=0.04):
        self.problems = {p.id: p for p in problems}
        self.p_good, self.p_inconsistent, self.p_lucky = p_good, p_inconsistent, p_lucky
        self.calls: list[int] = []

    def rollout(self, req: VerifyRequest) -> VerifyResult:
        rng = random.Random(f"{req.question_id}/{req.prefix}/{req.sample_index}")
        steps = split_steps(req.prefix)
        valid = prefix_is_valid(self.problems[req.question_id], steps)
        r, roll = step_result(steps[-1]), rng.random()
        good = self.p_good if valid else self.p_lucky
        if roll < good:
            text = f"{r} + 0 = {r}\n#### {req.answer}"
        elif roll < good + self.p_inconsistent:
            text = f"#### {req.answer}"
        else:
            text = f"{r} - 1 = {int(r) - 1}\n#### {int(req.answer) + 7}"
        return VerifyResult(text, is_correct(text, req.answer), len(text.split()))

    _memo: dict = {}  # shared by instances: tests re-run the same rollouts many times

    def __call__(self, batch: list[VerifyRequest]) -> list[VerifyResult]:
        self.calls.append(len(batch))
        params = (self.p_good, self.p_inconsistent, self.p_lucky)
        out = []
        for req in batch:
            key = (params, req.question_id, req.prefix, req.sample_index)
            if key not in self._memo:
                self._memo[key] = self.rollout(req)
            out.append(self._memo[key])
        return out
