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

from collections import Counter
from collections.abc import Iterable

from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import split_steps
from glore_ray.tasks.tiny_oracle import first_invalid_step
from glore_ray.tasks.tiny_world import OPS, TinyProblem, parse_step


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


# What a wrong step in a correct solution is (docs/faithful-world.md). A slip the next step
# carries, with a later slip that cancels it, means the student bent its chain towards an answer
# it holds apart from the chain; a slip the next step drops means it never read its own chain.
WRONG_STEP_KINDS = ("operand", "slip, carried", "slip, dropped", "slip, last", "unparsed")


def wrong_step_kind(problem: TinyProblem, solution: str) -> str | None:
    """The kind of the first invalid step (one of :data:`WRONG_STEP_KINDS`), or None when every
    step is valid. ``operand``: right arithmetic on the wrong amount or operation (a misread);
    ``slip, *``: wrong arithmetic, and the first later step that takes either value takes the
    written one (carried) or the true one (dropped), or no later step takes either (last).

    >>> from glore_ray.tasks.tiny_world import generate_problems
    >>> p = generate_problems(1, seed=0, split="train")[0]
    >>> first, second = p.reference.splitlines()[:2]
    >>> a, op, b, c = parse_step(first)
    >>> wrong_step_kind(p, p.reference) is None
    True
    >>> wrong_step_kind(p, f"{a} {op} {b} = {c + 1}\\n" + "\\n".join(p.reference.splitlines()[1:]))
    'slip, dropped'
    """
    index = first_invalid_step(problem, solution)
    if index is None:
        return None
    steps = split_steps(solution)
    parsed = parse_step(steps[index]) if index < len(steps) else None
    if parsed is None:
        return "unparsed"
    a, op, b, c = parsed
    true = OPS[op](a, b)
    if true == c:
        return "operand"
    for later in steps[index + 1:]:  # the first later step that takes the written or the true value
        parsed = parse_step(later)
        operands = {parsed[0], parsed[2]} if parsed else set()  # a product's total sits on the right
        if c in operands:
            return "slip, carried"
        if true in operands:
            return "slip, dropped"
    return "slip, last"


def wrong_step_kinds(problems_by_id: dict[str, TinyProblem], rows: Iterable[dict], text_key: str) -> dict[str, int]:
    """How many correct rows hold a first invalid step of each kind (:func:`wrong_step_kind`)."""
    kinds = Counter()
    for row in rows:
        problem, text = problems_by_id[row["question_id"]], row[text_key]
        correct = row["correct"] if row.get("correct") is not None else is_correct(text, problem.answer)
        if correct and (kind := wrong_step_kind(problem, text)) is not None:
            kinds[kind] += 1
    return {k: kinds[k] for k in WRONG_STEP_KINDS}
