"""The when/where/how policy (paper 3.2, 4.2): thresholds, ties, edge cases. Pure, no Ray."""

from __future__ import annotations

import math

import pytest

from glore_ray.decide import how
from glore_ray.decide.when import final_score, should_refine
from glore_ray.decide.where import BAD_TOKEN, first_bad_step

DRAFT = "4 + 5 = 9\n9 * 3 = 28\n28 - 2 = 26\n#### 26"


# ---------------------------------------------------------------- when


@pytest.mark.parametrize("score, threshold, expected", [
    (0.2, 0.5, True), (0.5, 0.5, True), (0.5000001, 0.5, False), (1.0, 1.0, True),
    (0.0, 0.0, True), (0.01, 0.0, False), (float("nan"), 0.5, True),
])
def test_should_refine_boundary_is_at_or_below(score, threshold, expected):
    assert should_refine(score, threshold) is expected


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.5", True])
def test_should_refine_rejects_bad_thresholds(threshold):
    with pytest.raises((ValueError, TypeError), match="when threshold"):
        should_refine(0.3, threshold)


def test_final_score_is_last_step_and_zero_without_steps():
    assert final_score([0.1, 0.9]) == 0.9
    assert final_score(()) == 0.0


# ---------------------------------------------------------------- where


def test_first_bad_step_threshold_and_ties():
    assert first_bad_step([0.9, 0.6, 0.5, 0.1], 0.5) == 2  # 0.5 <= 0.5 counts as bad
    assert first_bad_step([0.2, 0.1], 0.5) == 0
    assert first_bad_step([0.9, 0.51], 0.5) is None  # no bad step found
    assert first_bad_step([], 0.5) is None
    assert first_bad_step([0.9, math.nan, 0.1], 0.5) == 1


def test_local_prompt_marks_the_bad_step_and_keeps_the_others():
    marked = how.local_prompt("Q?", DRAFT, 1)
    assert marked == "Q: Q?\nDraft:\n4 + 5 = 9\n[BAD]9 * 3 = 28\n28 - 2 = 26\n#### 26\nRefinement:\n"
    assert marked.replace(BAD_TOKEN, "", 1) == how.global_prompt("Q?", DRAFT)
    assert how.local_prompt("Q?", DRAFT, 3).endswith("\n[BAD]#### 26\nRefinement:\n")


@pytest.mark.parametrize("index", [-1, 4, 99, True, "1"])
def test_local_prompt_rejects_indices_outside_the_draft(index):
    with pytest.raises(ValueError, match="out of range for a draft of 4 steps"):
        how.local_prompt("Q?", DRAFT, index)


# ---------------------------------------------------------------- how: prompts


def test_prompts_follow_the_design_formats():
    assert how.global_prompt("Q?", DRAFT) == f"Q: Q?\nDraft:\n{DRAFT}\nRefinement:\n"
    assert how.global_prompt("Q?", DRAFT + "\n") == how.global_prompt("Q?", DRAFT)
    # Blank lines and indentation are normalised away: the prompt is the draft's steps.
    assert how.global_prompt("Q?", "\n  4 + 5 = 9\n\n#### 9\n") == "Q: Q?\nDraft:\n4 + 5 = 9\n#### 9\nRefinement:\n"
    assert how.local_prompt("Q?", "\n  4 + 5 = 9\n\n#### 9", 1).endswith("Draft:\n4 + 5 = 9\n[BAD]#### 9\nRefinement:\n")
    local = how.local_prompt("Q?", DRAFT, 2)
    assert local == "Q: Q?\nDraft:\n4 + 5 = 9\n9 * 3 = 28\n[BAD]28 - 2 = 26\n#### 26\nRefinement:\n"
    assert local.count(BAD_TOKEN) == 1


def test_local_solution_reattaches_the_verified_prefix_once():
    assert how.local_solution(DRAFT, 1, "9 * 3 = 27\n#### 27") == "4 + 5 = 9\n9 * 3 = 27\n#### 27"
    assert how.local_solution(DRAFT, 1, "4 + 5 = 9\n9 * 3 = 27\n#### 27") == "4 + 5 = 9\n9 * 3 = 27\n#### 27"
    assert how.local_solution(DRAFT, 0, "1 + 1 = 2") == "1 + 1 = 2"
    assert how.local_solution(DRAFT, 2, "") == "4 + 5 = 9\n9 * 3 = 28\n"  # empty refinement


# ---------------------------------------------------------------- how: rerank


def test_rerank_picks_highest_orm_score():
    cands = [how.make_candidate("draft", "#### 1", [0.3]), how.make_candidate("global", "#### 2", [0.8]),
             how.make_candidate("local", "#### 3", [0.6])]
    assert how.rerank(cands).answer == "2"


def test_rerank_ties_prefer_draft_then_global_then_local():
    local = how.make_candidate("local", "#### 3", [0.6])
    glob = how.make_candidate("global", "#### 2", [0.6])
    draft = how.make_candidate("draft", "#### 1", [0.6])
    assert how.rerank([local, glob, draft]).kind == "draft"
    assert how.rerank([local, glob]).kind == "global"
    assert how.rerank([local, how.make_candidate("local", "#### 4", [0.6])]).answer == "3"  # then input order


def test_rerank_skips_answerless_candidates_unless_none_has_one():
    empty = how.make_candidate("global", "", [])
    no_answer = how.make_candidate("local", "I am not sure", [0.99])
    draft = how.make_candidate("draft", "#### 26", [0.1])
    assert how.rerank([draft, empty, no_answer]).kind == "draft"
    assert how.rerank([empty, no_answer]).kind == "local"  # nothing has an answer: plain ORM order
    with pytest.raises(ValueError, match="at least one"):
        how.rerank([])


def test_rerank_puts_nan_scores_last():
    assert how.rerank([how.make_candidate("draft", "#### 1", [math.nan]), how.make_candidate("local", "#### 2", [0.0])]).kind == "local"


def test_candidate_kind_is_checked():
    with pytest.raises(ValueError, match="kind"):
        how.make_candidate("student", "#### 1", [0.5])


# ---------------------------------------------------------------- the whole policy


def test_confident_draft_is_returned_without_refinement():
    plan = how.refine_plan("Q?", DRAFT, [0.9, 0.9, 0.9, 0.8], when_threshold=0.5)
    assert not plan.refine and plan.prompts == {}
    decision = how.decide(plan, {}, {})
    assert decision.chosen.kind == "draft" and decision.answer == "26" and not decision.refined


def test_refined_draft_plans_both_refiners_and_reranks():
    plan = how.refine_plan("Q?", DRAFT, [0.8, 0.4, 0.3, 0.2], [0.9, 0.3, 0.2, 0.1], 0.5, 0.5)
    assert plan.refine and plan.bad_step == 1
    assert plan.prompts["local"] == how.local_prompt("Q?", DRAFT, 1)
    solutions = {"global": "4 + 5 = 9\n9 * 3 = 27\n27 - 2 = 25\n#### 25",
                 "local": plan.solution("local", "9 * 3 = 27\n#### 27")}
    assert solutions["local"].startswith("4 + 5 = 9\n")
    decision = how.decide(plan, solutions, {"global": [0.9, 0.9, 0.9, 0.7], "local": [0.9, 0.8, 0.6]})
    assert [c.kind for c in decision.candidates] == ["draft", "global", "local"]
    assert decision.chosen.kind == "global" and decision.answer == "25"
    assert decision.to_dict()["answer"] == "25" and decision.to_dict()["bad_step"] == 1


def test_no_bad_step_means_global_only():
    plan = how.refine_plan("Q?", DRAFT, [0.9, 0.9, 0.9, 0.2], [0.9, 0.9, 0.9, 0.9])
    assert plan.refine and plan.bad_step is None and set(plan.prompts) == {"global"}
    with pytest.raises(KeyError, match="not planned"):
        plan.solution("local", "x")
    with pytest.raises(KeyError, match="not planned"):
        how.decide(plan, {"global": "#### 1", "local": "#### 2"}, {"global": [0.1], "local": [0.2]})


def test_empty_refinements_keep_the_draft():
    plan = how.refine_plan("Q?", DRAFT, [0.2] * 4, [0.2] * 4)
    decision = how.decide(plan, {"global": "", "local": plan.solution("local", "")}, {"global": [], "local": []})
    assert decision.chosen.kind == "draft"
    assert decision.candidates[1].answer is None and decision.candidates[1].score == 0.0


def test_plan_checks_its_inputs():
    with pytest.raises(ValueError, match="where_step_scores"):
        how.refine_plan("Q?", DRAFT, [0.1] * 4)
    with pytest.raises(ValueError, match="3 where step scores for a draft of 4 steps"):
        how.refine_plan("Q?", DRAFT, [0.1] * 4, [0.1] * 3)
    plan = how.refine_plan("Q?", DRAFT, [0.1] * 4, [0.1] * 4)
    with pytest.raises(KeyError, match="missing"):
        how.decide(plan, {"global": "#### 1"}, {"global": [0.5]})


def test_empty_draft_is_refined_globally():
    plan = how.refine_plan("Q?", "", [], [])
    assert plan.refine and plan.bad_step is None and list(plan.prompts) == ["global"]


def test_docstring_examples_run():
    import doctest

    import glore_ray.decide.how as how
    import glore_ray.decide.when as when
    import glore_ray.decide.where as where

    for module in (when, where, how):
        failed, attempted = doctest.testmod(module)
        assert failed == 0 and attempted > 0, module.__name__
