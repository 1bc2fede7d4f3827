"""SORM step labels: records, the per-rollout rule and post-processing (paper 3.1 step 2).

The raw label of step i is 1 iff some verifying rollout from prefix P_i reaches the right answer
and (when switched on) passes the consistency check (post-processing (2)). The last step P_L is
the whole solution: its label is the solution's own correctness, no rollouts needed. Then
(1) a positive at step i makes every earlier step positive, and (3), training set only, the
labels are balanced at each prefix length by marking the majority class's excess as -1
("ignore": the training collator skips it).

Which prefixes get rolled out, and how many times, is the scheduler's business
(:mod:`glore_ray.labeling.scheduler`); this module holds what both schedulers share.

>>> propagate_positive([0, 1, 0, 0])
([1, 1, 0, 0], 1)
>>> rollout_counts(VerifyResult("5 * 2 = 10\\n#### 10", True, 9), ["2 + 3 = 5"], consistency=True)
(True, False)
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass

from glore_ray.tasks.steps import is_consistent, join_steps, split_steps, unused_results

IGNORE_STEP = -1  # a step label training skips (post-processing (3)); the step_bce row format's "ignore"


@dataclass(frozen=True)
class VerifyRequest:
    """One verifying rollout to make: continue ``prompt + prefix`` once.

    ``seed_key`` + ``sample_index`` fix the rollout (see :func:`rollout_seed`): the same prefix
    of the same question gets the same rollouts in every scheduler and in every sample holding
    that prefix, which is what makes the efficient scheduler's labels equal the naive ones.
    """

    solution_key: str  # the (first) solution asking for this prefix: "<question_id>/<row>"
    question_id: str
    prompt: str  # the student prompt ``Q: {question}\\nA: ``
    prefix: str  # P_i: steps 1..i, one per line, newline-terminated
    prefix_index: int  # i, 0-based, in the solution ``solution_key``
    sample_index: int  # j in 0..K-1
    answer: str  # the reference answer the rollout is graded against
    seed_key: str  # :func:`prefix_key` of (question_id, prefix)


@dataclass(frozen=True)
class VerifyResult:
    """What the generator made for one :class:`VerifyRequest`."""

    text: str  # the generated suffix only (the text after the prefix)
    correct: bool  # graded with the one grader against ``answer``
    num_tokens: int  # generated tokens, for the cost report


def prefix_key(question_id: str, prefix: str) -> str:
    """Stable key of (question, prefix text): equal prefixes of one question share rollouts.

    >>> prefix_key("q1", "2 + 3 = 5\\n") == prefix_key("q1", "2 + 3 = 5\\n")
    True
    """
    digest = hashlib.sha256(f"{question_id}\x00{prefix}".encode()).hexdigest()
    return digest[:20]




def rollout_counts(result: VerifyResult, prefix_steps: list[str], consistency: bool,
                   strict: bool = False) -> tuple[bool, bool]:
    """(counts toward the step's label, rejected by the consistency check).

    A rollout counts when it reaches the right answer and, with ``consistency`` on, the prefix's
    last result R_i (``strict``: and every earlier result unused inside the prefix) appears in
    its suffix (paper 3.1, post-processing (2)).
    """
    if not result.correct:
        return False, False
    if not consistency:
        return True, False
    earlier = unused_results(prefix_steps) if strict else None
    ok = is_consistent(result.text, prefix_steps[-1], earlier)
    return ok, not ok


def propagate_positive(labels: list[int]) -> tuple[list[int], int]:
    """Post-processing (1): every step before a positive step is positive. Returns the new
    labels and how many it changed. (Accounts for hard problems the student solves from S_i but
    not from an earlier, equally valid, S_j.)"""
    last_positive = max((i for i, label in enumerate(labels) if label == 1), default=-1)
    out = [1 if i <= last_positive else label for i, label in enumerate(labels)]
    return out, sum(a != b for a, b in zip(labels, out, strict=True))


def balance_by_step(rows: list[dict], seed: int) -> tuple[list[dict], int]:
    """Post-processing (3), training set only: at each step index, mark the excess labels of the
    majority class as -1 so positives and negatives are equal there. Returns new rows (inputs
    untouched) and how many labels it marked.

    Without it positives pile up at the start of solutions and negatives at the end, a position
    prior the SORM learns instead of step validity (paper 3.1). Which labels go is seeded.

    >>> rows = [{"labels": [1, 0]}, {"labels": [1, 1]}, {"labels": [0, 0]}]
    >>> balance_by_step(rows, seed=0)
    ([{'labels': [-1, 0]}, {'labels': [1, 1]}, {'labels': [0, -1]}], 2)
    """
    by_step: dict[tuple[int, int], list[int]] = defaultdict(list)  # (step, label) -> row numbers
    for r, row in enumerate(rows):
        for i, label in enumerate(row["labels"]):
            if label in (0, 1):
                by_step[(i, label)].append(r)
    out = [dict(row, labels=list(row["labels"])) for row in rows]
    marked = 0
    rng = random.Random(f"balance/{seed}")
    for step in sorted({i for i, _ in by_step}):
        pos, neg = by_step.get((step, 1), []), by_step.get((step, 0), [])
        majority = pos if len(pos) > len(neg) else neg
        for r in rng.sample(majority, abs(len(pos) - len(neg))):
            out[r]["labels"][step] = IGNORE_STEP
            marked += 1
    return out, marked


def solution_steps(sample: dict, where: str) -> list[str]:
    """The steps of a sample row's ``text``; a ValueError naming ``where`` for a malformed row."""
    for name, kind in (("question_id", str), ("question", str), ("prompt", str), ("text", str), ("correct", bool),
                       ("answer", str)):
        if not isinstance(sample.get(name), kind):
            raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {sample.get(name)!r:.60}")
    return split_steps(sample["text"])


def label_row(sample: dict, steps: list[str], labels: list[int], audit: dict) -> dict:
    """A SORM label row: the step_bce row format (shared with ORM rows) plus audit fields."""
    return {
        "question_id": sample["question_id"],
        "question": sample["question"],  # the refiners' prompts are built from it (labeling/refine_pairs.py)
        "prompt": sample["prompt"],
        "solution": join_steps(steps),
        "labels": labels,
        "correct": sample["correct"],
        **audit,
    }


@dataclass
class SelfFilterReport:
    """What App. I's self-supervised filter kept of the SORM training set."""

    rows_in: int = 0
    rows_kept: int = 0  # rows with at least one step label left
    rows_dropped: int = 0  # rows with no label left: every label disagreed, or none was 0/1
    rows_unlabelled: int = 0  # of rows_dropped: no 0/1 label to begin with (balancing masked all)
    labels_in: int = 0  # 0/1 step labels before filtering
    labels_kept: int = 0
    labels_dropped: int = 0  # set to -1: the first SORM disagreed

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def self_filter(rows: list[dict], step_scores: list[list[float]], threshold: float = 0.5
                ) -> tuple[list[dict], SelfFilterReport]:
    """App. I: drop every training pair (Q, P_i, l_i) whose label disagrees with a first SORM's
    verdict l'_i = 1[SORM(Q, P_i) > threshold]; keep the rows that still have a label.

    A training pair is one step of a row, so a disagreeing step becomes -1 (ignored, as
    balancing does) rather than losing the row's other steps. ``step_scores[r]`` are the first
    SORM's scores of row r's steps; a row cut at the model's context has fewer scores than steps,
    and its unscored steps (which training truncates too) keep their labels. Returns new rows
    (inputs untouched) and the counts.

    >>> rows, report = self_filter([{"labels": [1, 0, -1]}, {"labels": [0]}], [[0.9, 0.7, 0.1], [0.8]])
    >>> rows, report.rows_dropped, report.labels_dropped
    ([{'labels': [1, -1, -1]}], 1, 2)
    """
    if len(rows) != len(step_scores):
        raise ValueError(f"self_filter: {len(rows)} rows but {len(step_scores)} score lists")
    report, kept = SelfFilterReport(rows_in=len(rows)), []
    for n, (row, scores) in enumerate(zip(rows, step_scores, strict=True)):
        if len(scores) > len(row["labels"]):
            raise ValueError(f"self_filter: row {n} (question {row.get('question_id')!r}) has "
                             f"{len(row['labels'])} labels but {len(scores)} scores")
        verdicts = [score > threshold for score in scores] + [None] * (len(row["labels"]) - len(scores))
        labels = [label if label == IGNORE_STEP or verdict is None or verdict == bool(label) else IGNORE_STEP
                  for label, verdict in zip(row["labels"], verdicts, strict=True)]
        given = sum(label != IGNORE_STEP for label in row["labels"])
        left = sum(label != IGNORE_STEP for label in labels)
        report.rows_unlabelled += given == 0
        report.labels_in += given
        report.labels_kept += left
        report.labels_dropped += given - left
        if left:
            kept.append(dict(row, labels=labels))
    report.rows_kept = len(kept)
    report.rows_dropped = len(rows) - len(kept)
    return kept, report
