"""SORM label rules and post-processing (paper 3.1 step 2), one rule at a time."""

from __future__ import annotations

from collections import Counter

import pytest
from labeling_fakes import FakeVerifier, make_samples

from glore_ray.config import LabelConfig
from glore_ray.labeling.scheduler import efficient_labels, naive_labels
from glore_ray.labeling.sorm import (
    IGNORE_STEP,
    VerifyResult,
    balance_by_step,
    prefix_key,
    propagate_positive,
    rollout_counts,
)
from glore_ray.metrics import label_agreement
from glore_ray.tasks.tiny_oracle import exact_step_labels


def test_rule1_propagates_positive_backwards_and_counts_changes():
    assert propagate_positive([0, 0, 1, 0, 1, 0]) == ([1, 1, 1, 1, 1, 0], 3)
    assert propagate_positive([0, 0, 0]) == ([0, 0, 0], 0)
    assert propagate_positive([1, 1, 0]) == ([1, 1, 0], 0)


def test_rule2_consistency_rejects_rollouts_that_ignore_the_result():
    prefix = ["2 + 3 = 5"]
    uses = VerifyResult("5 * 4 = 20\n#### 20", True, 5)
    as_operand = VerifyResult("4 * 5 = 20\n#### 20", True, 5)  # R_i as an operand is a use
    skips = VerifyResult("#### 20", True, 2)
    wrong = VerifyResult("5 * 3 = 15\n#### 15", False, 5)
    assert rollout_counts(uses, prefix, consistency=True) == (True, False)
    assert rollout_counts(as_operand, prefix, consistency=True) == (True, False)
    assert rollout_counts(skips, prefix, consistency=True) == (False, True)
    assert rollout_counts(skips, prefix, consistency=False) == (True, False)
    assert rollout_counts(wrong, prefix, consistency=True) == (False, False)  # wrong: not a rejection


def test_rule2_strict_variant_needs_earlier_unused_results():
    prefix = ["2 + 3 = 5", "4 * 6 = 24"]  # 5 is never used inside the prefix
    only_last = VerifyResult("24 + 1 = 25\n#### 25", True, 5)
    both = VerifyResult("24 + 5 = 29\n#### 29", True, 5)
    assert rollout_counts(only_last, prefix, consistency=True) == (True, False)
    assert rollout_counts(only_last, prefix, consistency=True, strict=True) == (False, True)
    assert rollout_counts(both, prefix, consistency=True, strict=True) == (True, False)


def test_rule3_balances_every_step_index_and_is_seeded():
    rows = [{"question_id": str(n), "labels": labels} for n, labels in enumerate(
        [[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1], [1]])]
    out, marked = balance_by_step(rows, seed=3)
    for step in range(3):
        kept = Counter(r["labels"][step] for r in out if len(r["labels"]) > step)
        assert kept[1] == kept[0]
    assert marked == sum(label == IGNORE_STEP for r in out for label in r["labels"]) == 4 + 1 + 2
    assert out == balance_by_step(rows, seed=3)[0]
    assert any(balance_by_step(rows, seed=s)[0] != out for s in range(4, 20))
    assert rows[0]["labels"] == [1, 1, 0]  # inputs untouched


def test_last_step_label_is_the_solutions_own_correctness():
    problems, samples = make_samples(20, 3)
    result = naive_labels(samples, FakeVerifier(problems), LabelConfig(propagate_positive=False))
    assert [r["labels"][-1] for r in result.rows] == [int(s["correct"]) for s in samples]
    assert all(r["rollouts_per_step"][-1] == 0 for r in result.rows)


def test_naive_counts_rule1_changes_and_consistency_rejections():
    problems, samples = make_samples(30, 4)
    verifier = FakeVerifier(problems, p_inconsistent=0.3)
    on = naive_labels(samples, verifier, LabelConfig())
    off = naive_labels(samples, verifier, LabelConfig(consistency=False))
    assert on.stats.consistency_rejected == sum(r["consistency_rejected"] for r in on.rollouts) > 0
    assert off.stats.consistency_rejected == 0
    changed = sum(a != b for r in on.rows for a, b in zip(r["labels"], r["raw_labels"], strict=True))
    assert on.stats.labels_by_rule1 == changed > 0
    # Without the check, rollouts that skip R_i count: more positives, never fewer.
    assert sum(map(sum, (r["labels"] for r in off.rows))) > sum(map(sum, (r["labels"] for r in on.rows)))


def test_labels_track_exact_truth_in_the_tiny_world():
    problems, samples = make_samples(40, 5)
    by_id = {p.id: p for p in problems}
    result = efficient_labels(samples, FakeVerifier(problems), LabelConfig())
    exact = [exact_step_labels(by_id[r["question_id"]], r["solution"]) for r in result.rows]
    agreement = label_agreement([r["labels"] for r in result.rows], exact)
    assert 0.8 < agreement["agreement"] < 1.0  # noisy like App. G (94%), far from chance


def test_seed_keys_are_stable_and_distinguish_questions_and_prefixes():
    assert prefix_key("q", "1 + 1 = 2\n") == "0256ba5e796f0a53e253"  # stable across runs and machines
    assert prefix_key("q", "1 + 1 = 2\n") != prefix_key("q2", "1 + 1 = 2\n")
    assert prefix_key("q", "1 + 1 = 2\n") != prefix_key("q", "1 + 1 = 3\n")


@pytest.mark.parametrize("field", ["question_id", "question", "prompt", "text", "correct", "answer"])
def test_missing_fields_are_named(field):
    sample = {"question_id": "q", "question": "x", "prompt": "Q: x\nA: ", "text": "#### 1", "correct": True, "answer": "1"}
    del sample[field]
    with pytest.raises(ValueError, match=f"sample 0 .*{field!r}"):
        naive_labels([sample], FakeVerifier([]), LabelConfig())


def test_soft_rows_must_be_the_hard_rows_and_threshold_to_their_labels():
    from glore_ray.artifacts import StageError
    from glore_ray.stages.labels import check_soft_matches_hard

    hard = [{"question_id": "q1", "solution": "2 + 3 = 5\n#### 5\n", "labels": [1, 0]},
            {"question_id": "q2", "solution": "1 + 1 = 3\n#### 3\n", "labels": [0, 0]}]
    soft = [dict(hard[0], labels=[0.25, 0.0]), dict(hard[1], labels=[0.0, 0.0])]
    check_soft_matches_hard(soft, hard)
    lucky = [soft[0], dict(hard[1], labels=[0.125, 0.0])]  # a binary-search label may say 0 here
    with pytest.raises(StageError, match=r"row 1 \(question 'q2'\).*\[0.125, 0.0\] against hard \[0, 0\]"):
        check_soft_matches_hard(lucky, hard)
    check_soft_matches_hard(lucky, hard, labels_equal=False)
    with pytest.raises(StageError, match="row 1"):  # another solution is refused whatever the labels
        check_soft_matches_hard([soft[0], dict(soft[1], solution="#### 3\n")], hard, labels_equal=False)
    with pytest.raises(StageError, match="1 soft label rows but sorm_labels has 2"):
        check_soft_matches_hard(soft[:1], hard)
