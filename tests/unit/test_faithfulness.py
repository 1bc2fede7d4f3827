"""Right answer, wrong steps (glore_ray/tasks/faithfulness.py) and the evaluate stage's
threshold-free rows built from it and from the AUCs. No Ray, no models: scorers are fakes."""

from __future__ import annotations

import json
import math

import pytest

from glore_ray.config import load_config
from glore_ray.stages import evaluate
from glore_ray.tasks.faithfulness import WRONG_STEP_KINDS, wrong_step_kind, wrong_step_kinds, wrong_steps_rate
from glore_ray.tasks.steps import join_steps, split_steps
from glore_ray.tasks.tiny_world import generate_problems


@pytest.fixture(scope="module")
def problems():
    # Problems with two or more steps before the answer, so a middle step can go wrong.
    return [p for p in generate_problems(40, seed=3, split="test") if len(split_steps(p.reference)) >= 3][:3]


def _slipped(problem):
    """The reference with its first step's result written wrong, but the right final answer."""
    steps = split_steps(problem.reference)
    head, _, value = steps[0].rpartition(" = ")
    return join_steps([f"{head} = {int(value) + 1}", *steps[1:]])


def _wrong(problem):
    """The slipped reference with a wrong final answer too."""
    return join_steps([*split_steps(_slipped(problem))[:-1], f"#### {int(problem.answer) + 1}"])


def test_wrong_steps_rate_counts_correct_rows_with_an_invalid_step(problems):
    a, b, c = problems
    by_id = {p.id: p for p in problems}
    rows = [{"question_id": a.id, "s": a.reference},  # correct, every step valid
            {"question_id": b.id, "s": _slipped(b)},  # correct answer, a wrong step
            {"question_id": c.id, "s": _wrong(c)}]  # wrong answer: not counted at all
    assert wrong_steps_rate(by_id, rows, "s") == {"correct": 2, "wrong_steps": 1, "rate": 0.5}
    # A correct column is the verdict when present (the sampler graded prefix + text).
    rows[1]["correct"] = False
    assert wrong_steps_rate(by_id, rows, "s") == {"correct": 1, "wrong_steps": 0, "rate": 0.0}
    empty = wrong_steps_rate(by_id, [], "s")
    assert (empty["correct"], empty["wrong_steps"]) == (0, 0) and math.isnan(empty["rate"])


def _carried(problem):
    """A slip the next step takes up, and a second slip that cancels it: the right answer
    (None when the reference's second step does not start from the first one's result)."""
    steps = split_steps(problem.reference)
    head, _, value = steps[0].rpartition(" = ")
    second_head, _, second_value = steps[1].rpartition(" = ")
    left, op, amount = second_head.split()
    if left != value:
        return None
    wrong = int(value) + 10
    return join_steps([f"{head} = {wrong}", f"{wrong} {op} {amount} = {second_value}", *steps[2:]])


def test_wrong_step_kinds_tell_misreads_from_carried_and_dropped_slips(problems):
    p = next(q for q in problems if _carried(q) is not None)
    steps = split_steps(p.reference)
    assert wrong_step_kind(p, p.reference) is None
    assert wrong_step_kind(p, _slipped(p)) == "slip, dropped"  # the next step starts from the true value
    a, op, b = steps[0].rpartition(" = ")[0].split()
    other = int(b) + 1  # right arithmetic on an amount the question does not state
    misread = join_steps([f"{a} {op} {other} = {evaluate_op(int(a), op, other)}", *steps[1:]])
    assert wrong_step_kind(p, misread) == "operand"
    carried = _carried(p)
    assert carried is not None and wrong_step_kind(p, carried) == "slip, carried"
    last = join_steps([*steps[:-2], steps[-2].rpartition(" = ")[0] + " = 0", steps[-1]])
    assert wrong_step_kind(p, last) == "slip, last"
    assert wrong_step_kind(p, "two plus three is five\n" + p.reference) == "unparsed"
    rows = [{"question_id": p.id, "s": t, "correct": True} for t in (p.reference, _slipped(p), carried, misread)]
    rows.append({"question_id": p.id, "s": carried, "correct": False})  # wrong answers are not counted
    kinds = wrong_step_kinds({p.id: p}, rows, "s")
    assert list(kinds) == list(WRONG_STEP_KINDS)
    assert kinds == {"operand": 1, "slip, carried": 1, "slip, dropped": 1, "slip, last": 0, "unparsed": 0}


def evaluate_op(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _drafts(problems):
    """Test drafts and their SORM label rows: draft 0 right, 1 right with a slipped step, 2 wrong."""
    texts = [problems[0].reference, _slipped(problems[1]), _wrong(problems[2])]
    drafts = [{"question_id": p.id, "text": t, "correct": i < 2} for i, (p, t) in enumerate(zip(problems, texts))]
    labels = {d["question_id"]: {"prompt": f"Q: {p.question}\nA: ", "solution": d["text"],
                                 "labels": [1] * len(split_steps(d["text"]))} for p, d in zip(problems, drafts)}
    return drafts, labels


def test_reward_model_rows_gain_final_and_exact_step_aucs(problems):
    drafts, labels = _drafts(problems)
    test = {p.id: p.to_row() for p in problems}
    n = [len(split_steps(d["text"])) for d in drafts]
    perfect = [[0.9] * n[0], [0.2] * n[1], [0.2] * n[2]]  # low on every invalid step (exact labels)
    perfect[1][-1] = 0.95  # ...but the slipped draft's answer is right: a high final score
    reversed_ = [[1 - s for s in ss] for ss in perfect]
    tables = evaluate.reward_model_tables(load_config(), drafts, labels, {"good": perfect, "bad": reversed_}, test)
    assert tables["good"]["final_auc"] == 1.0 and tables["bad"]["final_auc"] == 0.0
    # Exact labels: draft 1 is invalid from its first step on, draft 2 likewise (wrong answer too).
    # Every valid step (draft 0's) outscores every invalid one but the slipped draft's final 0.95.
    assert tables["good"]["step_auc_exact"] == pytest.approx(1 - 1 / (n[1] + n[2]))
    assert tables["bad"]["step_auc_exact"] == pytest.approx(1 - tables["good"]["step_auc_exact"])
    assert {"step", "final", "first_error_accuracy", "step_exact"} <= set(tables["good"])  # old keys stay
    # Draft 0 is clean and found clean; drafts 1 and 2 are invalid from step 0 and flagged there.
    assert tables["good"]["first_error_f1_exact"]["f1"] == 1.0 and tables["bad"]["first_error_f1_exact"]["f1"] == 0.0
    assert 0.0 <= tables["good"]["step_auc_exact_in_position"] <= 1.0
    gsm = evaluate.reward_model_tables(load_config(None, ["data.task=gsm8k"]), drafts, labels, {"good": perfect}, test)
    assert "step_auc_exact" not in gsm["good"] and gsm["good"]["final_auc"] == 1.0


def test_student_logprob_baseline_scores_the_drafts_with_the_final_student(problems, tmp_path):
    drafts, labels = _drafts(problems)
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "final.json").write_text(json.dumps({"round": 1, "checkpoint": "ckpt/student"}))
    cfg = load_config(None, [f"run.run_dir={tmp_path}"])
    calls = []

    def fake_logprobs(path, prompts, solutions):
        calls.append((path, prompts, solutions))
        return [[-0.1] * len(split_steps(s)) if i == 0 else [-2.0] * len(split_steps(s)) for i, s in enumerate(solutions)]

    out = evaluate.baselines(cfg, drafts, labels, {p.id: p.to_row() for p in problems}, fake_logprobs)
    assert calls[0][0] == "ckpt/student" and calls[0][2] == [d["text"] for d in drafts]
    assert out["student_logprob"]["final_auc"] == 0.75  # ranks the right draft 0 over the wrong one only
    assert out["student_logprob"]["step_auc_exact"] == 1.0
    assert "first_error_f1_exact" not in out["student_logprob"]  # log-probs have no 0.5 threshold


def test_report_shows_aucs_the_baseline_and_faithfulness_and_reads_older_runs(tmp_path):
    from glore_ray import report

    f1 = {"erroneous": 0.4, "clean": 0.9, "f1": 0.554, "n_erroneous": 10, "n_clean": 30}
    rm = {"step": {"accuracy": 0.6, "fp_rate": 0.1, "fn_rate": 0.2}, "final": {"accuracy": 0.7},
          "first_error_accuracy": 0.5, "step_exact": {"accuracy": 0.65}, "final_auc": 0.8, "step_auc_exact": 0.75,
          "step_auc_exact_in_position": 0.66, "first_error_f1_exact": f1}
    results = {"reward_models": {"orm": rm, "sorm": rm},
               "baselines": {"student_logprob": {"final_auc": 0.61, "step_auc_exact": 0.55,
                                                 "step_auc_exact_in_position": 0.52}},
               "faithfulness": {"student_samples": {"correct": 100, "wrong_steps": 12, "rate": 0.12},
                                "test_drafts": {"correct": 40, "wrong_steps": 1, "rate": 0.025},
                                "student_rounds": [
                                    {"round": 0, "test_greedy": {"correct": 40, "wrong_steps": 3, "rate": 0.075},
                                     "test_samples": {"correct": 300, "wrong_steps": 24, "rate": 0.08}},
                                    {"round": 1, "test_greedy": {"correct": 50, "wrong_steps": 1, "rate": 0.02},
                                     "test_samples": {"correct": 320, "wrong_steps": 40, "rate": 0.125},
                                     "admitted": {"correct": 900, "wrong_steps": 9, "rate": 0.01}}],
                                "refiners": {"global": {"correct": 0, "wrong_steps": 0, "rate": float("nan")}},
                                "sorm_rollouts": {"correct": 1000, "wrong_steps": 40, "rate": 0.04}}}
    table = report._reward_models(tmp_path, results)
    assert "| orm | 0.600 | 0.650 | 0.700 | 0.100 | 0.200 | 0.500 |" in table
    assert "| final AUC | step AUC (exact) | step AUC within position | first-error F1 (erroneous / clean) |" in table
    assert "| orm | 0.800 | 0.750 | 0.660 | 0.554 (0.400 / 0.900) |" in table
    assert "| student log-prob (training-free) | 0.610 | 0.550 | 0.520 | n/a |" in table
    faith = report._faithfulness(results)
    assert "right answer, wrong steps" in faith and "7 of 200" in faith and "3.5%" in faith and "5%" in faith
    assert "| final student: ORM/SORM train samples | 100 | 12 | 0.120 (above target) |" in faith
    assert "| final student: greedy test drafts | 40 | 1 | 0.025 |" in faith
    assert "| SFT student: greedy test drafts | 40 | 3 | 0.075 (above target) |" in faith  # 5% for greedy
    assert "| SFT student: test samples | 300 | 24 | 0.080 |" in faith  # 10% for samples
    assert "| EI round 1 student: test samples | 320 | 40 | 0.125 (above target) |" in faith
    assert "| EI round 1: rows admitted to D_1 | 900 | 9 | 0.010 |" in faith and "admitted to D_0" not in faith
    assert "| refiner: global | 0 | 0 | n/a |" in faith
    assert "| SORM verification rollouts (train) | 1000 | 40 | 0.040 |" in faith
    # A run from before these keys: AUCs n/a, no baseline row, no faithfulness section.
    old = {"reward_models": {"orm": {k: v for k, v in rm.items() if "auc" not in k and "exact" not in k}}}
    old_table = report._reward_models(tmp_path, old)
    assert "| orm | 0.600 | 0.700 | 0.100 | 0.200 | 0.500 |" in old_table and "| orm | n/a |" in old_table
    assert "training-free) |" not in old_table
    assert report._faithfulness(old) == "" and report._faithfulness({"faithfulness": {}}) == ""
