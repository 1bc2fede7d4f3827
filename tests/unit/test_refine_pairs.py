"""Global pairs and local triples (paper 3.1 step 3, App. C) and the refiner prompts."""

from __future__ import annotations

import pytest

from glore_ray.labeling.refine_pairs import global_pairs, global_prompt, local_prompt, local_triples, question_of

PROMPT = "Q: Ava has 2 pens. She buys 3. How many?\nA: "
QUESTION = "Ava has 2 pens. She buys 3. How many?"


def _s(qid, text, correct):
    return {"question_id": qid, "question": QUESTION, "prompt": PROMPT, "text": text, "correct": correct}


def test_prompts_follow_design_format():
    expected = f"Q: {QUESTION}\nDraft:\n2 + 3 = 6\n#### 6\nRefinement:\n"
    assert global_prompt(QUESTION, "2 + 3 = 6\n\n#### 6\n") == expected
    assert local_prompt(QUESTION, "2 + 3 = 6\n#### 6", 0).endswith("Draft:\n[BAD]2 + 3 = 6\n#### 6\nRefinement:\n")
    with pytest.raises(ValueError, match="out of range"):
        local_prompt(QUESTION, "#### 6", 1)
    assert question_of({"prompt": "junk", "question": "Q?"}) == "Q?"  # the field, never the prompt parsed
    with pytest.raises(ValueError, match="question 'q'.*field 'question' must be a string"):
        question_of({"question_id": "q", "prompt": PROMPT})


def test_global_pairs_every_distinct_pair_then_capped():
    samples = [_s("a", f"2 + 3 = {v}\n#### {v}", v == 5) for v in (4, 6, 7, 7, 5)]
    samples += [_s("a", "2 + 3 = 5\n\n#### 5", True), _s("a", "3 + 2 = 5\n#### 5", True)]
    samples += [_s("b", "#### 1", False), _s("c", "#### 5", True)]
    rows, report = global_pairs(samples, cap_per_question=None, seed=0)
    assert len(rows) == 3 * 2  # drafts {4, 6, 7} x targets {2+3, 3+2}; duplicate texts merged
    assert all(r["prompt"] == global_prompt(QUESTION, r["draft"]) and r["target"].endswith("#### 5\n") for r in rows)
    assert report.skipped == {"no_correct_sample": 1, "no_incorrect_sample": 1}
    capped, capped_report = global_pairs(samples, cap_per_question=4, seed=0)
    assert len(capped) == 4 and capped_report.questions_capped == 1 and capped_report.candidates == 6
    assert capped == global_pairs(samples, cap_per_question=4, seed=0)[0]
    assert len({str(global_pairs(samples, 2, seed=s)[0]) for s in range(10)}) > 1


def _label_row(solution, labels, witnesses, correct=False, qid="a"):
    return {"question_id": qid, "question": QUESTION, "prompt": PROMPT, "solution": solution, "labels": labels,
            "correct": correct, "witnesses": witnesses}


def test_local_triple_marks_first_negative_and_continues_verified_prefix():
    row = _label_row("2 + 3 = 5\n5 * 2 = 11\n#### 11\n", [1, 0, 0], ["5 * 2 = 10\n#### 10", None, None])
    rows, report = local_triples([row], cap_per_question=None, seed=0)
    assert rows == [{
        "question_id": "a", "prompt": local_prompt(QUESTION, row["solution"], 1), "bad_step": 1,
        "target": "2 + 3 = 5\n5 * 2 = 10\n#### 10\n", "draft": row["solution"]}]
    assert "[BAD]5 * 2 = 11" in rows[0]["prompt"] and report.rows == 1


def test_local_first_step_error_targets_a_correct_sample_and_skips_are_counted():
    bad_first = _label_row("2 + 4 = 6\n#### 6\n", [0, 0], [None, None])
    good = _label_row("2 + 3 = 5\n#### 5\n", [1, 1], [None, None], correct=True)
    lonely = _label_row("2 + 4 = 6\n#### 6\n", [0, 0], [None, None], qid="z")
    no_witness = _label_row("2 + 3 = 5\n5 + 1 = 7\n#### 7\n", [1, 0, 0], [None, None, None])
    rows, report = local_triples([bad_first, good, lonely, no_witness], None, seed=0)
    assert [(r["bad_step"], r["target"]) for r in rows] == [(0, "2 + 3 = 5\n#### 5\n")]
    assert report.skipped == {"correct_draft": 1, "no_negative_step": 0, "no_witness": 1, "no_correct_sample": 1}


def test_local_cap_and_balanced_rows_refused():
    rows = [_label_row(f"2 + 3 = 5\n5 * 2 = {v}\n#### {v}\n", [1, 0, 0], ["5 * 2 = 10\n#### 10", None, None])
            for v in range(11, 17)]
    out, report = local_triples(rows, cap_per_question=2, seed=1)
    assert len(out) == 2 and report.questions_capped == 1 and report.candidates == 6
    with pytest.raises(ValueError, match="before balancing"):
        local_triples([_label_row("#### 1\n", [-1], [None])], None, seed=0)


def test_training_prompts_match_the_inference_policy_prompts():
    # decide/how.py builds the prompts at evaluation and serving time; on the normalised drafts the
    # training rows carry they must be byte-identical, or the refiners see a different format.
    from glore_ray.decide import how

    draft = "2 + 3 = 5\n5 * 2 = 11\n#### 11\n"
    assert global_prompt(QUESTION, draft) == how.global_prompt(QUESTION, draft)
    for bad in range(3):
        assert local_prompt(QUESTION, draft, bad) == how.local_prompt(QUESTION, draft, bad)
