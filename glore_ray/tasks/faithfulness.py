"""Faithfulness in the tiny world: how often a correct final answer rests on a wrong step.

ORM labels call every step of a correct solution good, and SORM labels trust a verifying rollout
that reaches the right answer (paper 3.1); both are only as sound as "right answer => right
steps". A tiny model can learn to track the true total from the question and write numbers
around it (docs/faithful-world.md), which breaks that. The exact oracle counts it; on real models ProcessBench
(GSM8K split) found 7 of 200 correct solutions with a wrong step.

>>> from glore_ray.tasks.tiny_world import generate_problems
>>> p = generate_problems(1, seed=0, split="train")[0]
>>> slipped = "1 + 1 = 3\\n#### " + p.answer  # right answer, wrong step
>>> wrong_steps_rate({p.id: p}, [{"question_id": p.id, "s": p.reference}, {"question_id": p.id, "s": slipped}], "s")
{'correct': 2, 'wrong_steps': 1, 'rate': 0.5}
"""

from __future__ import annotations

from collections.abc import Iterable

from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.tiny_world import TinyProblem, first_invalid_step


def wrong_steps_rate(problems_by_id: dict[str, TinyProblem], rows: Iterable[dict], text_key: str) -> dict:
    """Among the correct rows, how many hold an invalid step: ``{"correct": n, "wrong_steps": m,
    "rate": m / n}`` (NaN rate when none is correct).

    A row is correct by its ``correct`` column when it has one (the grader's verdict at sampling
    time), else by grading ``row[text_key]`` against its problem's answer.
    """
    n = m = 0
    for row in rows:
        problem, text = problems_by_id[row["question_id"]], row[text_key]
        correct = row["correct"] if row.get("correct") is not None else is_correct(text, problem.answer)
        if correct:
            n += 1
            m += first_invalid_step(problem, text) is not None
    return {"correct": n, "wrong_steps": m, "rate": m / n if n else float("nan")}
