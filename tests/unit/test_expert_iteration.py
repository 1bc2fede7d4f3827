"""Expert Iteration datasets (paper 3.1 step 1) as pure functions."""

from glore_ray.labeling.expert_iteration import converged, next_dataset, normalized_solution, sft_rows
from glore_ray.tasks.prompts import student_prompt


def sample(qid, text, correct):
    return {"question_id": qid, "prompt": f"Q: {qid}\nA: ", "text": text, "correct": correct}


def test_next_dataset_keeps_only_new_correct_unique_samples():
    d0 = [{"question_id": "a", "prompt": "Q: a\nA: ", "target": "1 + 1 = 2\n#### 2\n"}]
    samples = [sample("a", "1 + 1 = 2\n#### 2", True),  # same as the SFT row: not new
               sample("a", "2 + 0 = 2\n\n#### 2  ", True),
               sample("a", " 2 + 0 = 2\n#### 2", True),  # duplicate after normalisation
               sample("a", "1 + 1 = 3\n#### 3", False),
               sample("b", "4 - 1 = 3\n#### 3", True)]
    d1, counts = next_dataset(d0, samples)
    assert d1[:1] == d0
    assert [r["target"] for r in d1[1:]] == ["2 + 0 = 2\n#### 2\n", "4 - 1 = 3\n#### 3\n"]
    assert counts == {"samples": 5, "correct": 4, "new_unique": 2, "dataset": 3}
    d2, counts = next_dataset(d1, samples)  # nothing new the second time
    assert d2 == d1 and counts["new_unique"] == 0


def test_next_dataset_within_the_round_keeps_solutions_the_dataset_already_has():
    d0 = [{"question_id": "a", "prompt": "Q: a\nA: ", "target": "1 + 1 = 2\n#### 2\n"}]
    samples = [sample("a", "1 + 1 = 2\n#### 2", True),  # the SFT row's solution: added again
               sample("a", "1 + 1 = 2\n\n#### 2", True),  # the same after normalisation: once
               sample("a", "2 + 0 = 2\n#### 2", True),
               sample("a", "1 + 1 = 3\n#### 3", False)]
    d1, counts = next_dataset(d0, samples, against_previous=False)
    assert d1[:1] == d0
    assert [r["target"] for r in d1[1:]] == ["1 + 1 = 2\n#### 2\n", "2 + 0 = 2\n#### 2\n"]
    assert counts == {"samples": 4, "correct": 3, "new_unique": 2, "dataset": 3}


def test_sft_rows_skip_questions_without_reference():
    rows = sft_rows([{"id": "a", "question": "q?", "reference": "1 + 1 = 2\n#### 2"},
                     {"id": "b", "question": "r?", "reference": "  "}], student_prompt)
    assert rows == [{"question_id": "a", "prompt": "Q: q?\nA: ", "target": "1 + 1 = 2\n#### 2\n"}]
    assert normalized_solution("a\n\n b \n") == "a\nb\n"


def test_expert_iteration_stops_when_maj1_converges():
    assert not converged([0.30], 0.01)  # one round: nothing to compare
    assert not converged([0.30, 0.35], 0.01)
    assert converged([0.30, 0.35, 0.355], 0.01)  # improved by less than the tolerance
    assert converged([0.30, 0.35, 0.20], 0.01)  # got worse
