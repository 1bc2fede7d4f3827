"""Refinement training data and the refiner prompts (paper 3.1 step 3, App. C; DESIGN §3).

Global: pair an incorrect sample of a question with a correct one, (Q, A_incorrect, A_correct).
Local: take an incorrect sample whose first negative SORM label is step i, insert ``[BAD]`` at
the start of step i, and target the verified prefix P_{i-1} followed by a counting (correct and
consistent) verifying rollout from it. Serving and evaluation import the prompt builders.

>>> print(global_prompt("How many?", "2 + 2 = 5\\n#### 5"), end="")
Q: How many?
Draft:
2 + 2 = 5
#### 5
Refinement:
>>> print(local_prompt("How many?", "1 + 1 = 2\\n2 + 2 = 5\\n#### 5", 1), end="")
Q: How many?
Draft:
1 + 1 = 2
[BAD]2 + 2 = 5
#### 5
Refinement:
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from glore_ray.decide.how import global_prompt, local_prompt  # one definition: serving uses it too
from glore_ray.labeling.sorm import IGNORE
from glore_ray.tasks.steps import join_steps, split_steps

STUDENT_PROMPT = ("Q: ", "\nA: ")  # DESIGN §3: ``Q: {question}\nA: ``


@dataclass
class PairReport:
    questions: int = 0  # questions that gave at least one candidate
    candidates: int = 0  # rows possible before the cap
    rows: int = 0
    questions_capped: int = 0  # questions with more candidates than the cap
    skipped: dict | None = None  # reason -> count


def question_of(row: dict) -> str:
    """The question text of a row: its ``question`` field, else parsed from the student prompt."""
    if isinstance(row.get("question"), str):
        return row["question"]
    prompt = row.get("prompt")
    head, tail = STUDENT_PROMPT
    if not isinstance(prompt, str) or not (prompt.startswith(head) and prompt.rstrip(" ").endswith(tail.rstrip(" "))):
        raise ValueError(f"row of question {row.get('question_id')!r}: no 'question' field and prompt "
                         f"{prompt!r:.60} is not a student prompt 'Q: ...\\nA: '")
    return prompt[len(head) : prompt.rstrip(" ").rindex(tail.rstrip(" "))]


def global_pairs(samples: list[dict], cap_per_question: int | None, seed: int) -> tuple[list[dict], PairReport]:
    """Rows {question_id, prompt (global refiner prompt), target, draft} from every (incorrect,
    correct) pair of distinct solution texts of a question, at most ``cap_per_question`` a
    question (a seeded uniform choice among all pairs)."""
    incorrect, correct = defaultdict(dict), defaultdict(dict)  # qid -> normalised text -> row
    for n, s in enumerate(samples):
        if not isinstance(s.get("text"), str) or not isinstance(s.get("correct"), bool):
            raise ValueError(f"sample {n}: needs str 'text' and bool 'correct'")
        steps = split_steps(s["text"])
        if steps:  # identical texts would only repeat the same pair
            (correct if s["correct"] else incorrect)[s["question_id"]].setdefault(join_steps(steps), s)
    rows, report = [], PairReport(skipped={"no_correct_sample": 0, "no_incorrect_sample": 0})
    for qid in sorted(set(incorrect) | set(correct)):
        bad, good = list(incorrect[qid]), list(correct[qid])
        if not bad or not good:
            report.skipped["no_correct_sample" if bad else "no_incorrect_sample"] += 1
            continue
        question = question_of(incorrect[qid][bad[0]])
        picks = _capped(len(bad) * len(good), cap_per_question, random.Random(f"global/{seed}/{qid}"), report)
        for k in picks:
            draft, target = bad[k // len(good)], good[k % len(good)]
            rows.append({"question_id": qid, "prompt": global_prompt(question, draft), "target": target,
                         "draft": draft})
    report.rows = len(rows)
    return rows, report


def local_triples(label_rows: list[dict], cap_per_question: int | None, seed: int) -> tuple[list[dict], PairReport]:
    """Rows {question_id, prompt (local refiner prompt), target, draft, bad_step} from SORM label
    rows (before balancing: -1 labels are not errors) that carry ``witnesses``.

    The first negative step i of an incorrect draft gets ``[BAD]``; the target is P_{i-1} plus
    the first counting rollout from it (paper 3.1 step 3). When i is the first step there is no
    verified prefix: a correct sample of the same question (a rollout from the empty prefix) is
    the target.
    """
    skipped = {"correct_draft": 0, "no_negative_step": 0, "no_witness": 0, "no_correct_sample": 0}
    report = PairReport(skipped=skipped)
    correct_by_q = defaultdict(list)
    for row in label_rows:
        if row["correct"]:
            correct_by_q[row["question_id"]].append(row["solution"])
    candidates = defaultdict(dict)  # qid -> draft text -> row
    for n, row in enumerate(label_rows):
        if IGNORE in row["labels"]:
            raise ValueError(f"label row {n}: has -1 (balanced) labels; pass the rows before balancing")
        if row["correct"]:
            skipped["correct_draft"] += 1
            continue
        triple = _local_triple(row, correct_by_q, skipped)
        if triple is not None:
            candidates[row["question_id"]].setdefault(triple["draft"], triple)
    rows = []
    for qid in sorted(candidates):
        found = list(candidates[qid].values())
        picks = _capped(len(found), cap_per_question, random.Random(f"local/{seed}/{qid}"), report)
        rows.extend(found[k] for k in picks)
    report.rows = len(rows)
    return rows, report



def _local_triple(row: dict, correct_by_q: dict, skipped: dict) -> dict | None:
    labels, steps = row["labels"], split_steps(row["solution"])
    bad = next((i for i, label in enumerate(labels) if label == 0), None)
    if bad is None:
        skipped["no_negative_step"] += 1
        return None
    if bad == 0:
        options = sorted(correct_by_q.get(row["question_id"], []))
        if not options:
            skipped["no_correct_sample"] += 1
            return None
        # Deterministic: the same draft always gets the same target.
        target = options[random.Random(row["solution"]).randrange(len(options))]
    else:
        witness = row["witnesses"][bad - 1]
        if witness is None:
            skipped["no_witness"] += 1
            return None
        target = join_steps(split_steps(join_steps(steps[:bad]) + witness))
    return {"question_id": row["question_id"], "prompt": local_prompt(question_of(row), row["solution"], bad),
            "target": target, "draft": row["solution"], "bad_step": bad}


def _capped(n: int, cap: int | None, rng: random.Random, report: PairReport) -> list[int]:
    """Indices 0..n-1, or a seeded sample of ``cap`` of them (kept in index order)."""
    report.questions += 1
    report.candidates += n
    if cap is None or n <= cap:
        return list(range(n))
    if cap < 1:
        raise ValueError(f"cap_per_question must be >= 1 or None, got {cap}")
    report.questions_capped += 1
    return sorted(rng.sample(range(n), cap))
