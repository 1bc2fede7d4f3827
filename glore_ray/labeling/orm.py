"""ORM training data (paper 3.1 step 2) and the Balanced ORM baseline.

Every step of a sampled solution is labelled with the solution's final correctness: the ORM
learns V^pi of the student, which is why it is over-pessimistic on hard questions (paper 3).
The Balanced ORM "balances the number of positives and negatives per question" (paper 3.1).

>>> rows = orm_rows([{"question_id": "q", "prompt": "Q: x\\nA: ", "text": "1 + 1 = 2\\n#### 2", "correct": True}])
>>> rows[0]["labels"], rows[0]["solution"]
([1, 1], '1 + 1 = 2\\n#### 2\\n')
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from glore_ray.tasks.steps import join_steps, split_steps


@dataclass
class BalanceReport:
    questions: int = 0
    questions_single_class: int = 0  # all samples correct, or all wrong
    rows_in: int = 0
    rows_out: int = 0
    rows_dropped: int = 0


def orm_rows(samples: list[dict]) -> list[dict]:
    """step_bce rows {question_id, prompt, solution, labels}: each step gets the sample's final
    correctness. Samples without any step are skipped (nothing to score)."""
    rows = []
    for n, sample in enumerate(samples):
        _check(sample, n)
        steps = split_steps(sample["text"])
        if steps:
            rows.append({
                "question_id": sample["question_id"],
                "prompt": sample["prompt"],
                "solution": join_steps(steps),
                "labels": [int(sample["correct"])] * len(steps),
            })
    return rows


def balanced_orm_rows(rows: list[dict], seed: int, keep_single_class: bool = False) -> tuple[list[dict], BalanceReport]:
    """Per question, keep as many positive as negative solutions (the majority class is
    down-sampled, seeded); rows keep their input order.

    A question whose samples are all correct (or all wrong) has min(pos, neg) = 0, so strict
    balancing drops it; that is the default, because keeping it re-teaches exactly the per-question
    prior (``this question is hopeless``) the Balanced ORM exists to remove, and matches the paper's
    note that the balanced ORM "assigns roughly 50% chance of success to all questions" (4.1).
    ``keep_single_class=True`` keeps such questions whole instead (more data, less balance).

    >>> rows = [{"question_id": "a", "labels": [l]} for l in (1, 0, 0, 0)] + [{"question_id": "b", "labels": [1]}]
    >>> kept, report = balanced_orm_rows(rows, seed=0)
    >>> sorted(r["labels"][0] for r in kept), report.questions_single_class
    ([0, 1], 1)
    """
    by_question: dict[str, dict[int, list[int]]] = defaultdict(lambda: {0: [], 1: []})
    for r, row in enumerate(rows):
        by_question[row["question_id"]][_row_label(row, r)].append(r)
    report = BalanceReport(questions=len(by_question), rows_in=len(rows))
    keep: set[int] = set()
    for qid in sorted(by_question):
        pos, neg = by_question[qid][1], by_question[qid][0]
        if not pos or not neg:
            report.questions_single_class += 1
            if keep_single_class:
                keep.update(pos + neg)
            continue
        rng = random.Random(f"balanced-orm/{seed}/{qid}")
        n = min(len(pos), len(neg))
        keep.update(rng.sample(pos, n) + rng.sample(neg, n))
    out = [row for r, row in enumerate(rows) if r in keep]
    report.rows_out, report.rows_dropped = len(out), len(rows) - len(out)
    return out, report


def _row_label(row: dict, r: int) -> int:
    labels = row.get("labels")
    if not labels or labels[-1] not in (0, 1):
        raise ValueError(f"ORM row {r} (question {row.get('question_id')!r}): labels must be a non-empty 0/1 list")
    return labels[-1]


def _check(sample: dict, n: int) -> None:
    for name, kind in (("question_id", str), ("prompt", str), ("text", str), ("correct", bool)):
        if not isinstance(sample.get(name), kind):
            raise ValueError(f"sample {n}: field {name!r} must be {kind.__name__}, got {sample.get(name)!r:.60}")
