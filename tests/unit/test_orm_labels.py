"""ORM rows (every step = final correctness) and the Balanced ORM (paper 3.1 step 2)."""

from __future__ import annotations

from collections import Counter

import pytest

from glore_ray.labeling.orm import balanced_orm_rows, orm_rows


def _sample(qid, text, correct):
    return {"question_id": qid, "prompt": f"Q: {qid}?\nA: ", "text": text, "correct": correct}


def test_every_step_gets_the_final_correctness():
    rows = orm_rows([_sample("a", "1 + 2 = 3\n\n3 * 2 = 6\n#### 6", True), _sample("a", "1 + 2 = 4\n#### 4", False)])
    assert [r["labels"] for r in rows] == [[1, 1, 1], [0, 0]]
    assert rows[0]["solution"] == "1 + 2 = 3\n3 * 2 = 6\n#### 6\n"  # blank lines are not steps
    assert set(rows[0]) == {"question_id", "prompt", "solution", "labels"}


def test_empty_samples_skipped_and_bad_rows_named():
    assert orm_rows([_sample("a", "  \n", False)]) == []
    with pytest.raises(ValueError, match="sample 1: field 'correct'"):
        orm_rows([_sample("a", "#### 1", True), {**_sample("a", "#### 1", True), "correct": "yes"}])


def _rows(spec):
    return [{"question_id": q, "labels": [c, c]} for q, pos, neg in spec for c in [1] * pos + [0] * neg]


def test_balanced_per_question_and_single_class_dropped():
    rows = _rows([("a", 5, 2), ("b", 1, 6), ("c", 3, 0), ("d", 0, 4)])
    kept, report = balanced_orm_rows(rows, seed=0)
    per_q = Counter((r["question_id"], r["labels"][-1]) for r in kept)
    assert per_q == {("a", 1): 2, ("a", 0): 2, ("b", 1): 1, ("b", 0): 1}
    assert (report.questions, report.questions_single_class, report.rows_out, report.rows_dropped) == (4, 2, 6, 15)
    positions = [next(n for n, r in enumerate(rows) if r is k) for k in kept]
    assert positions == sorted(positions)  # input order kept


def test_keep_single_class_and_seeding():
    rows = _rows([("a", 5, 2), ("c", 3, 0)])
    kept, _ = balanced_orm_rows(rows, seed=0, keep_single_class=True)
    assert sum(r["question_id"] == "c" for r in kept) == 3 and len(kept) == 7
    ids = lambda out: [id(r) for r in out]
    assert ids(balanced_orm_rows(rows, seed=1)[0]) == ids(balanced_orm_rows(rows, seed=1)[0])
    assert len({tuple(ids(balanced_orm_rows(rows, seed=s)[0])) for s in range(10)}) > 1


def test_balanced_rejects_unlabelled_rows():
    with pytest.raises(ValueError, match="ORM row 0 .*'a'"):
        balanced_orm_rows([{"question_id": "a", "labels": []}], seed=0)
