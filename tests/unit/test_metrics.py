"""Metrics of the paper's tables (App. B, Tables 1-3, App. D, App. G, 4.2)."""

from __future__ import annotations

import math
import random
from itertools import combinations

import pytest

from glore_ray import metrics as m
from glore_ray.decide.where import first_bad_step


def test_majority_vote_normalises_and_breaks_ties_by_first_occurrence():
    assert m.majority_vote(["1,000", "7", "1000.0", "7"]) == "1000"
    assert m.majority_vote(["7", "3", "3", "7"]) == "7"
    assert m.majority_vote(["3", "7", "7", "3"]) == "3"
    assert m.majority_vote([None, None, "x"]) is None
    assert m.majority_vote([None, "4", None]) == "4"


def test_maj_at_k_uses_first_k_samples():
    answers = [["1", "2", "2"], ["5", "5", "6"], ["9", "8", "8"]]
    refs = ["2", "5", "9"]
    assert m.maj_at_k(answers, refs, k=1) == pytest.approx(2 / 3)  # maj@1 is the first sample
    assert m.maj_at_k(answers, refs, k=3) == pytest.approx(2 / 3)
    assert m.maj_at_k([["2", "1", "1"]], ["2"], k=3) == 0.0
    with pytest.raises(ValueError, match="answers has 1 items but references has 2"):
        m.maj_at_k([["1"]], ["1", "2"], k=1)


def test_pass_at_k_is_unbiased():
    # Against brute force: the share of k-subsets of n samples that contain a correct one.
    for n, c, k in [(5, 2, 2), (6, 1, 3), (8, 0, 4), (4, 4, 1), (10, 3, 10)]:
        flags = [True] * c + [False] * (n - c)
        subsets = list(combinations(flags, k))
        assert m.pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert m.mean_pass_at_k([[True, False], [False, False]], k=1) == 0.25
    with pytest.raises(ValueError, match="k <= n"):
        m.pass_at_k(3, 1, 4)


def test_rerank_at_k_takes_top_score_first_on_ties():
    scores = [[0.1, 0.9, 0.5], [0.7, 0.7, 0.2]]
    correct = [[False, True, False], [True, False, False]]
    assert m.rerank_at_k(scores, correct, k=3) == 1.0
    assert m.rerank_at_k(scores, correct, k=1) == 0.5
    assert m.rerank_at_k([[float("nan"), 0.1]], [[True, False]], k=2) == 0.0  # NaN ranks lowest


def test_step_and_final_accuracy_with_error_rates():
    scores = [[0.9, 0.6, 0.2], [0.8, 0.4]]
    labels = [[1, 0, 0], [1, -1]]
    out = m.step_accuracy(scores, labels, threshold=0.5)
    assert out["n"] == 4 and out["accuracy"] == 0.75
    assert (out["false_positives"], out["false_negatives"], out["fp_rate"], out["fn_rate"]) == (1, 0, 0.5, 0.0)
    final = m.final_answer_accuracy(scores, [False, True], threshold=0.5)
    assert final["accuracy"] == 0.5 and final["false_negatives"] == 1 and final["fn_rate"] == 1.0
    assert m.classification([0.5], [1], threshold=0.5)["false_negatives"] == 1  # <= T is negative
    with pytest.raises(ValueError, match="differ in length"):
        m.step_accuracy([[0.1]], [[1, 0]])


def test_first_error_location_accuracy():
    predicted = [first_bad_step(s, 0.5) for s in ([0.9, 0.3, 0.2], [0.2, 0.9], [0.9, 0.9])]
    assert m.first_error_accuracy(predicted, [[1, 0, 0], [1, 0], [1, 1]]) == pytest.approx(2 / 3)


def test_rerank_heuristics_app_d():
    s = [0.8, 0.5, 0.9]
    got = {h: m.aggregate_step_scores(s, h) for h in m.RERANK_HEURISTICS}
    assert got["final"] == 0.9 and got["min"] == 0.5
    assert got["mean"] == pytest.approx(2.2 / 3) and got["product"] == pytest.approx(0.36)
    assert got["weighted_mean"] == pytest.approx((0.8 / 3 + 0.5 / 2 + 0.9) / (1 / 3 + 1 / 2 + 1))
    assert got["penultimate_mean"] == pytest.approx(0.7)
    assert m.aggregate_step_scores([0.4], "penultimate_mean") == 0.4
    with pytest.raises(ValueError, match="unknown rerank heuristic"):
        m.aggregate_step_scores(s, "median")
    # Sample 0: high final, one bad step; sample 1: uniform. Heuristics disagree on the pick.
    step_scores = [[[0.9, 0.1, 0.95], [0.7, 0.7, 0.7]]]
    by = m.rerank_by_heuristic(step_scores, [[True, False]])
    assert by["final"] == 1.0 and by["min"] == 0.0 and by["mean"] == 0.0 and set(by) == set(m.RERANK_HEURISTICS)


def test_fix_and_damage_rates_and_fixed_set_overlap():
    draft = [False, False, False, True, True]
    glob = [True, False, True, True, False]
    local = [True, True, False, True, True]
    assert m.fix_rate(draft, glob) == pytest.approx(2 / 3) and m.damage_rate(draft, glob) == 0.5
    assert m.damage_rate(draft, local) == 0.0
    ids = list("abcde")
    a, b = m.fixed_set(ids, draft, glob), m.fixed_set(ids, draft, local)
    assert (a, b) == ({"a", "c"}, {"a", "b"})
    assert m.overlap(a, b) == {"only_a": 1, "only_b": 1, "both": 1, "union": 3, "jaccard": 1 / 3}
    assert math.isnan(m.fix_rate([True], [True]))  # no incorrect drafts: undefined, not 0


def test_label_agreement_app_g():
    out = m.label_agreement([[1, 1, 0], [1, -1]], [[1, 0, 0], [0, 1]])
    assert out == {"n_steps": 4, "agreement": 0.5, "false_positives": 2, "false_negatives": 0}


def test_random_scores_give_chance_accuracy():
    rng = random.Random(0)
    labels = [rng.randint(0, 1) for _ in range(4000)]
    scores = [rng.random() for _ in labels]
    assert abs(m.classification(scores, labels)["accuracy"] - 0.5) < 0.04


def _pairwise_auc(scores, labels):
    """The definition, O(n^2): the share of (positive, negative) pairs ranked right, ties 1/2."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auc_is_threshold_free_and_counts_ties_half():
    assert m.auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert m.auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert m.auc([0.3] * 4, [0, 1, 0, 1]) == 0.5
    assert m.auc([-40.0, -3.0], [0, 1]) == 1.0  # log-probs: no threshold, no [0, 1] range needed
    assert m.auc([0.1, 0.7, 0.7, 0.9], [0, 1, 0, 1]) == 3.5 / 4  # 3 pairs right, 1 tie
    assert m.auc([0.9, 0.1, 0.2], [-1, 0, 1]) == 1.0  # -1 (balanced away) is skipped
    assert m.auc([True, False], [1, 0]) == 1.0 and m.auc([0.2, 0.4], [True, False]) == 0.0
    assert math.isnan(m.auc([0.1, 0.9], [1, 1])) and math.isnan(m.auc([], []))
    with pytest.raises(ValueError, match="scores has 2 items but labels has 1"):
        m.auc([0.1, 0.2], [1])


def test_auc_matches_the_pairwise_definition_with_many_ties():
    rng = random.Random(1)
    for _ in range(20):
        labels = [rng.randint(0, 1) for _ in range(60)] + [0, 1]
        scores = [rng.choice([0.1, 0.25, 0.5, 0.75, rng.random()]) for _ in labels]
        assert m.auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels))


def test_step_auc_flattens_steps_and_zips_to_the_shorter_list():
    # Solution 1's third label has no score (cut past the context): it is dropped, not an error.
    assert m.step_auc([[0.9, 0.2], [0.8, 0.7]], [[1, 0], [1, 1, 0]]) == 1.0
    assert m.step_auc([[0.2, 0.9], [0.8]], [[1, 0], [0]]) == 0.0
    assert math.isnan(m.step_auc([[0.5, 0.6]], [[1, 1]]))
    with pytest.raises(ValueError, match="step_scores has 1 items"):
        m.step_auc([[0.5]], [[1], [0]])


def test_within_position_auc_removes_the_credit_for_a_position_prior():
    # Scores that only fall with the index: pooled AUC rewards them, within position they are chance.
    labels = [[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]]
    by_index = [[0.9, 0.5, 0.1]] * len(labels)
    assert m.step_auc(by_index, labels) > 0.85
    assert m.step_auc_within_position(by_index, labels) == 0.5
    # Weights: index 1 has 2 labelled steps at AUC 1.0, index 2 has 3 at AUC 0.0 (-1 skipped).
    scores = [[0.5, 0.9, 0.95], [0.5, 0.2, 0.1], [0.5, -1.0, 0.3]]
    assert m.step_auc_within_position(scores, [[1, 1, 0], [1, 0, 1], [1, -1, 1]]) == pytest.approx(2 / 5)
    assert math.isnan(m.step_auc_within_position([[0.3, 0.2]], [[1, 0]]))  # one class at each index
    with pytest.raises(ValueError, match="step_scores has 1 items"):
        m.step_auc_within_position([[0.5]], [[1], [0]])


def test_first_error_f1_is_processbenchs_harmonic_mean():
    labels = [[1, 0, 0], [1, 1, 1], [0, 0], [1, 1]]
    perfect = [[0.9, 0.1, 0.1], [0.9, 0.9, 0.9], [0.1, 0.1], [0.9, 0.9]]
    assert m.first_error_f1(perfect, labels)["f1"] == 1.0
    # Flagging every first step finds the error of [0, 0] only and no clean solution: F1 0, though
    # a third of the erroneous first errors are right (a flag-everything prior scores nothing).
    flag_all = [[0.1, 0.9, 0.9], [0.1, 0.9, 0.9], [0.1, 0.9], [0.1, 0.9]]
    out = m.first_error_f1(flag_all, labels)
    assert (out["erroneous"], out["clean"], out["f1"]) == (0.5, 0.0, 0.0)
    # The threshold is inclusive (paper 4.2): a score of exactly 0.5 is a predicted error.
    assert m.first_error_f1([[0.5, 0.9]], [[0, 0]])["erroneous"] == 1.0
    assert m.first_error_f1([[0.9, 0.6]], [[1, 0]], threshold=0.6)["erroneous"] == 1.0
    assert math.isnan(m.first_error_f1([[0.9]], [[1]])["f1"])  # no erroneous solution: undefined
    assert (m.first_error_f1([[0.9]], [[1]])["n_erroneous"], m.first_error_f1([[0.9]], [[1]])["n_clean"]) == (0, 1)


def test_first_error_threshold_finds_the_best_f1_a_brute_force_scan_finds():
    rng = random.Random(7)
    for trial in range(60):
        n = rng.randint(1, 12)
        # Scores on a coarse grid, so ties between steps and solutions happen; a few NaN.
        scores = [[rng.choice([math.nan] + [i / 10 for i in range(11)]) if rng.random() < 0.05 else rng.randint(0, 10) / 10
                   for _ in range(rng.randint(1, 5))] for _ in range(n)]
        labels = []
        for ss in scores:
            first = rng.choice([None] + list(range(len(ss) + 1)))  # len(ss): an error past the scored steps
            labels.append([1] * len(ss) + [0] if first == len(ss) else
                          [1] * len(ss) if first is None else [1] * first + [0] * (len(ss) - first))
        best = m.first_error_threshold(scores, labels)
        grid = [i / 1000 for i in range(1001)]
        f1s = [m.first_error_f1(scores, labels, t)["f1"] for t in grid]
        top = max((f for f in f1s if f == f), default=math.nan)
        at_best = m.first_error_f1(scores, labels, best["threshold"])
        assert 0.0 <= best["threshold"] <= 1.0
        if math.isnan(top):
            assert math.isnan(best["f1"]) and math.isnan(at_best["f1"])
        else:
            assert best["f1"] == pytest.approx(top) == pytest.approx(at_best["f1"]), trial
            assert best["erroneous"] == pytest.approx(at_best["erroneous"])
            assert best["clean"] == pytest.approx(at_best["clean"])


def test_refinement_report_tables_by_hand():
    ids = ["a", "b", "c", "d"]
    draft = [False, False, True, True]
    refined = {"global": [True, False, True, False],  # fixes a, damages d
               "local_orm": [False, False, True, True],
               "local_sorm": [False, True, True, True]}  # fixes b
    r = m.refinement_report(ids, draft, refined, reranked_ok=[True, False, True, True], policy_ok=[True, True, True, False])
    assert r["table3"] == {"global": 0.5, "local+orm": 0.0, "local+sorm": 0.5, "global+local+orm": 0.5,
                           "global+local+sorm": 1.0}
    assert r["figure3"]["global"] == {"all_drafts": 0.5, "incorrect_drafts": 0.5, "damage_rate": 0.5}
    assert r["figure4"] == {"greedy": 0.5, "rerank_draft_global_local": 0.75, "oracle": 1.0, "policy": 0.75}
    assert r["complementarity"]["jaccard"] == 0.0 and r["complementarity"]["union"] == 2
    assert r["n_incorrect_drafts"] == 2
    with pytest.raises(ValueError, match="policy_ok"):
        m.refinement_report(ids, draft, refined, [True] * 4, [True])
