"""Refinement training data and the refiner prompts (paper 3.1 step 3, App. C; docs/architecture.md §3).

Global: pair an incorrect sample of a question with a correct one, (Q, A_incorrect, A_correct).
Local: take an incorrect sample whose first negative SORM label is step i, insert ``[BAD]`` at
the start of step i, and target the verified prefix P_{i-1} followed by a counting (correct and
consistent) verifying rollout from it. Value refinement (App. J): ``[BAD]`` after the step with
the highest value for the student, the target a correct rollout that leaves the draft there.
Serving and evaluation import the prompt builders.

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
from glore_ray.labeling.sorm import IGNORE_STEP
from glore_ray.tasks.steps import join_steps, split_steps


@dataclass
class PairReport:
    questions: int = 0  # questions that gave at least one candidate
    candidates: int = 0  # rows possible before the cap
    rows: int = 0
    questions_capped: int = 0  # questions with more candidates than the cap
    skipped: dict | None = None  # reason -> count


def question_of(row: dict) -> str:
    """The question text of a sample or SORM label row (both carry it: stages/labels.py)."""
    question = row.get("question")
    if not isinstance(question, str):
        raise ValueError(f"row of question {row.get('question_id')!r}: field 'question' must be a string, got "
                         f"{question!r:.60} (label rows written before it was added: re-run sorm_labels with --force)")
    return question


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
        if IGNORE_STEP in row["labels"]:
            raise ValueError(f"label row {n}: has -1 (balanced) labels; pass the rows before balancing")
        if row["correct"]:
            skipped["correct_draft"] += 1
            continue
        triple = _local_triple(row, correct_by_q, skipped)
        if triple is not None:
            candidates[row["question_id"]].setdefault(triple["draft"], triple)
    rows = _capped_rows(candidates, cap_per_question, f"local/{seed}", report)
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


def value_triples(label_rows: list[dict], rollouts: list[dict], cap_per_question: int | None,
                  seed: int) -> tuple[list[dict], PairReport]:
    """Value-refinement rows (paper App. J) {question_id, prompt (local refiner prompt), target,
    draft, bad_step, value_step, value} from the SORM label rows of the train split and the
    audit table of their verifying rollouts (``rollouts_<split>`` of stage ``sorm_labels``).

    For each incorrect solution S the highest-value step S_i is the rolled-out prefix P_i with
    the largest share of correct verifying rollouts (App. J: "the step with the most correct
    verifying rollouts"); ``[BAD]`` goes before S_{i+1}; the target is P_i followed by the first
    (by sample index) correct rollout from P_i whose first step differs from S_{i+1} (App. J:
    "one of the verifying rollouts whose first step differs from S_{i+1}"). Solutions without
    such a rollout are skipped and counted.
    """
    skipped = {"correct_draft": 0, "no_rollouts": 0, "no_correct_rollout": 0, "no_differing_rollout": 0}
    report = PairReport(skipped=skipped)
    by_prefix = rollouts_by_prefix(rollouts)
    candidates = defaultdict(dict)  # qid -> draft text -> row
    for n, row in enumerate(label_rows):
        for name in ("question_id", "solution", "correct", "prefix_keys", "rollouts_per_step"):
            if row.get(name) is None:
                raise ValueError(f"label row {n} (question {row.get('question_id')!r}): missing {name!r}; "
                                 "value refinement needs the audit fields of sorm_labels/labels_train")
        if row["correct"]:
            skipped["correct_draft"] += 1
            continue
        triple = _value_triple(row, n, by_prefix, skipped)
        if triple is not None:
            candidates[row["question_id"]].setdefault(triple["draft"], triple)
    return _capped_rows(candidates, cap_per_question, f"value/{seed}", report), report


def rollouts_by_prefix(rollouts: list[dict]) -> dict[str, list[dict]]:
    """The audit rollouts grouped by prefix key, each group in sample-index order, one row per
    (prefix, sample index): the naive scheduler records a prefix shared by several solutions once
    per solution, with the same seeded rollouts. Rows without a prefix key (the placeholder row of
    an empty audit table) are left out."""
    groups: dict[str, dict[int, dict]] = defaultdict(dict)
    for n, r in enumerate(rollouts):
        if r.get("prefix_key") is None:
            continue
        if not isinstance(r.get("text"), str) or not isinstance(r.get("correct"), bool) \
                or not isinstance(r.get("sample_index"), int):
            raise ValueError(f"rollout {n} (prefix {r['prefix_key']!r}): needs str 'text', bool 'correct' "
                             "and int 'sample_index'")
        groups[r["prefix_key"]].setdefault(r["sample_index"], r)
    return {key: [rs[j] for j in sorted(rs)] for key, rs in groups.items()}


def highest_value_prefix(row: dict, by_prefix: dict[str, list[dict]], where: str) -> tuple[int, float] | None:
    """(i, share of correct rollouts from P_i) for the best rolled-out non-final prefix of a label
    row; None when none of its prefixes was rolled out.

    Only rolled-out prefixes compete. The efficient scheduler scans an incorrect solution from
    its last non-answer step backwards and stops at the first positive prefix, so the prefixes
    before that one are never rolled out: rule (1) labels them without an estimate of their value.
    A share (not a count) because prefixes get different numbers of rollouts (each stops at its
    first counting one). Ties go to the later step: it keeps more of the draft, and nothing we
    sampled says the earlier step is better. "Correct" is the grader's verdict alone: the value
    V^pi(S_i) is the chance the student reaches the right answer from S_i (App. J); the
    consistency check (2) filters noise out of the SORM's V* labels, not out of V^pi.
    """
    best = None
    for i, key in enumerate(row["prefix_keys"][:-1]):  # the last step is P_L: no rollouts
        made = by_prefix.get(key, [])
        if len(made) != row["rollouts_per_step"][i]:
            raise ValueError(f"{where}, step {i}: the label row counts {row['rollouts_per_step'][i]} rollouts "
                             f"but the rollouts table holds {len(made)} for prefix {key!r} (another split or run?)")
        if made:
            value = sum(r["correct"] for r in made) / len(made)
            if best is None or value >= best[1]:
                best = (i, value)
    return best


def _value_triple(row: dict, n: int, by_prefix: dict, skipped: dict) -> dict | None:
    where = f"label row {n} (question {row['question_id']!r})"
    best = highest_value_prefix(row, by_prefix, where)
    if best is None:
        skipped["no_rollouts"] += 1
        return None
    i, value = best
    if value == 0:
        skipped["no_correct_rollout"] += 1
        return None
    steps = split_steps(row["solution"])
    following = steps[i + 1]
    # An empty rollout (the prefix already ends on the answer's number) leaves no step to differ.
    rollout = next((r for r in by_prefix[row["prefix_keys"][i]]
                    if r["correct"] and split_steps(r["text"]) and split_steps(r["text"])[0] != following), None)
    if rollout is None:
        skipped["no_differing_rollout"] += 1
        return None
    return {"question_id": row["question_id"], "prompt": local_prompt(question_of(row), row["solution"], i + 1),
            "target": join_steps(steps[: i + 1] + split_steps(rollout["text"])), "draft": row["solution"],
            "bad_step": i + 1, "value_step": i, "value": value}


def _capped_rows(candidates: dict[str, dict], cap: int | None, tag: str, report: PairReport) -> list[dict]:
    """Every question's candidate rows (qid -> draft -> row), capped per question by a seeded
    choice (``tag``/qid seeds it); sets ``report.rows``."""
    rows = []
    for qid in sorted(candidates):
        found = list(candidates[qid].values())
        picks = _capped(len(found), cap, random.Random(f"{tag}/{qid}"), report)
        rows.extend(found[k] for k in picks)
    report.rows = len(rows)
    return rows


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
