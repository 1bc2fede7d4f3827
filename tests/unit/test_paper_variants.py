"""The paper's optional variants as pure pieces: App. F contrastive pairs, App. I self-filtering,
App. J value-refinement data and policy, and how the report shows them. No Ray, no models."""

from __future__ import annotations

import json
import math

import pytest

from glore_ray.decide import how
from glore_ray.decide.where import highest_value_step, value_bad_step
from glore_ray.labeling.contrastive import contrastive_pairs
from glore_ray.labeling.refine_pairs import value_triples
from glore_ray.labeling.sorm import IGNORE_STEP, self_filter

PROMPT = "Q: Ava has 5 pens. She buys 3, loses 2, then buys 4. How many?\nA: "
QUESTION = "Ava has 5 pens. She buys 3, loses 2, then buys 4. How many?"

# ---------------------------------------------------------------- App. F: contrastive pairs


def _sample(qid, text, correct):
    return {"question_id": qid, "question": QUESTION, "prompt": PROMPT, "text": text, "correct": correct}


def test_contrastive_pairs_use_each_solution_once_up_to_the_smaller_class():
    good = [_sample("a", f"{v} + 0 = 10\n#### 10", True) for v in (10, 11, 12)]
    bad = [_sample("a", f"5 + 3 = {v}\n#### {v}", False) for v in range(1, 6)]
    dup = [_sample("a", "10 + 0 = 10\n\n#### 10\n", True)]  # the same solution as good[0]
    rows = contrastive_pairs(good + bad + dup + [_sample("b", "#### 1", False)], None, seed=0)
    assert len(rows) == 3  # App. F: "the maximal equal number", min(3 distinct good, 5 bad)
    assert len({r["chosen"] for r in rows}) == 3 and len({r["rejected"] for r in rows}) == 3  # none repeated
    assert all(r["chosen"].endswith("#### 10\n") and r["prompt"] == PROMPT for r in rows)
    assert contrastive_pairs(good + bad, None, seed=0) == contrastive_pairs(good + bad, None, seed=0)
    assert len({str(contrastive_pairs(good + bad, None, seed=s)) for s in range(8)}) > 1  # seeded matching
    assert len(contrastive_pairs(good + bad, 2, seed=0)) == 2
    with pytest.raises(ValueError, match=r"sample 0 \(question 'a'\).*bool 'correct'"):
        contrastive_pairs([{**good[0], "correct": "yes"}], None, seed=0)


# ---------------------------------------------------------------- App. I: self-filtered SORM


def test_self_filter_drops_each_disagreeing_step_label_and_empty_rows():
    rows = [{"question_id": "a", "labels": [1, 1, 0, 0]},
            {"question_id": "b", "labels": [IGNORE_STEP, 0]},
            {"question_id": "c", "labels": [1, 0, 1]}]
    scores = [[0.9, 0.2, 0.5, 0.1],  # step 1 disagrees; 0.5 is not > 0.5, so l' = 0 agrees at step 2
              [0.1, 0.7],  # the only label disagrees: the row goes
              [0.8, 0.3]]  # cut at the context: step 2 has no verdict and keeps its label
    kept, report = self_filter(rows, scores)
    assert kept == [{"question_id": "a", "labels": [1, IGNORE_STEP, 0, 0]}, {"question_id": "c", "labels": [1, 0, 1]}]
    assert rows[0]["labels"] == [1, 1, 0, 0]  # inputs untouched
    assert report.as_dict() == {"rows_in": 3, "rows_kept": 2, "rows_dropped": 1, "rows_unlabelled": 0,
                                "labels_in": 8, "labels_kept": 6, "labels_dropped": 2}
    assert report.rows_kept + report.rows_dropped == len(rows)
    masked = [{"question_id": "d", "labels": [IGNORE_STEP, IGNORE_STEP]}]  # balancing left it nothing to train on
    assert self_filter(masked, [[0.5, 0.5]])[1].as_dict() == {
        "rows_in": 1, "rows_kept": 0, "rows_dropped": 1, "rows_unlabelled": 1,
        "labels_in": 0, "labels_kept": 0, "labels_dropped": 0}
    with pytest.raises(ValueError, match=r"row 0 \(question 'a'\) has 4 labels but 5 scores"):
        self_filter(rows[:1], [[0.9] * 5])
    with pytest.raises(ValueError, match="2 rows but 1 score lists"):
        self_filter(rows[:2], scores[:1])


# ---------------------------------------------------------------- App. J: value-refinement data

DRAFT = "5 + 3 = 8\n8 - 2 = 5\n5 + 4 = 9\n#### 9\n"  # step 1 is wrong (8 - 2 = 6)


def _label_row(qid, keys, made, correct=False, solution=DRAFT):
    return {"question_id": qid, "question": QUESTION, "prompt": PROMPT, "solution": solution, "labels": [1] * 4,
            "correct": correct,
            "raw_labels": [-1] * 4, "witnesses": [None] * 4, "rollouts_per_step": made, "prefix_keys": keys}


def _rollouts(key, outcomes):
    """Rollout rows of one prefix: (correct, text) per sample index, listed in reverse order."""
    rows = [{"question_id": "x", "prefix_key": key, "sample_index": j, "text": text, "correct": ok,
             "counted": ok, "prefix_index": 0} for j, (ok, text) in enumerate(outcomes)]
    return rows[::-1]


WRONG = (False, "5 + 1 = 6\n#### 6")


def test_value_row_marks_the_step_after_the_best_prefix_and_targets_a_differing_rollout():
    # P_0 was never rolled out (the efficient scan stopped at P_1); P_1 has 2/4 correct, P_2 1/4.
    row = _label_row("a", ["k0", "k1", "k2", ""], [0, 4, 4, 0])
    rollouts = _rollouts("k1", [(True, "5 + 4 = 9\n#### 10"),  # correct, but starts like S_2: not a refinement
                                WRONG, (True, "6 + 4 = 10\n#### 10"), WRONG])
    rollouts += _rollouts("k2", [WRONG, WRONG, (True, "9 + 1 = 10\n#### 10"), WRONG])
    rows, report = value_triples([row], rollouts, cap_per_question=None, seed=0)
    assert rows == [{"question_id": "a", "prompt": how.local_prompt(QUESTION, DRAFT, 2), "draft": DRAFT,
                     "target": "5 + 3 = 8\n8 - 2 = 5\n6 + 4 = 10\n#### 10\n",
                     "bad_step": 2, "value_step": 1, "value": 0.5}]
    assert "\n8 - 2 = 5\n[BAD]5 + 4 = 9\n" in rows[0]["prompt"]
    assert report.rows == 1 and report.skipped == {"correct_draft": 0, "no_rollouts": 0,
                                                   "no_correct_rollout": 0, "no_differing_rollout": 0}


def test_value_ties_go_to_the_later_step_and_shares_not_counts_decide():
    # P_0: 1 of 2 correct; P_1: 2 of 4 (more correct rollouts, the same share); P_2: none.
    row = _label_row("a", ["k0", "k1", "k2", ""], [2, 4, 1, 0])
    rollouts = _rollouts("k0", [(True, "8 + 2 = 10\n#### 10"), WRONG])
    rollouts += _rollouts("k1", [WRONG, (True, "6 + 4 = 10\n#### 10"), WRONG, (True, "x\n#### 10")])
    rollouts += _rollouts("k2", [WRONG])
    rows, _ = value_triples([row], rollouts, None, seed=0)
    assert [(r["value_step"], r["bad_step"], r["value"]) for r in rows] == [(1, 2, 0.5)]
    # A prefix with fewer rollouts but a higher share wins over one with more correct rollouts.
    rollouts = _rollouts("k0", [(True, "8 + 2 = 10\n#### 10"), (True, "8 + 2 = 10\n#### 10")])
    rollouts += _rollouts("k1", [WRONG, (True, "6 + 4 = 10\n#### 10"), WRONG, (True, "x\n#### 10")])
    rollouts += _rollouts("k2", [WRONG])
    rows, _ = value_triples([row], rollouts, None, seed=0)
    assert [(r["value_step"], r["target"]) for r in rows] == [(0, "5 + 3 = 8\n8 + 2 = 10\n#### 10\n")]


def test_value_skips_are_counted_and_rows_never_exceed_incorrect_solutions():
    rows_in = [
        _label_row("good", ["g0", "g1", "g2", ""], [0, 0, 0, 0], correct=True),
        _label_row("none", ["n0", "n1", "n2", ""], [0, 0, 0, 0]),
        _label_row("zero", ["z0", "z1", "z2", ""], [0, 0, 2, 0]),
        _label_row("same", ["s0", "s1", "s2", ""], [0, 0, 1, 0]),
        _label_row("short", [""], [0], solution="#### 9\n"),
        _label_row("ok", ["o0", "o1", "o2", ""], [0, 0, 1, 0]),
        _label_row("ends", ["e0", "e1", "e2", ""], [0, 0, 1, 0]),
    ]
    rollouts = _rollouts("z2", [WRONG, WRONG]) + _rollouts("s2", [(True, "#### 9")])  # S_3 is "#### 9"
    rollouts += _rollouts("o2", [(True, "#### 10")]) + [{"empty": True}]  # an empty table's placeholder row
    # A correct but empty rollout (the grader read the prefix's last number) has no step to differ.
    rollouts += _rollouts("e2", [(True, "")])
    rows, report = value_triples(rows_in, rollouts, None, seed=0)
    assert [r["question_id"] for r in rows] == ["ok"] and rows[0]["bad_step"] == 3
    assert report.skipped == {"correct_draft": 1, "no_rollouts": 2, "no_correct_rollout": 1,
                              "no_differing_rollout": 2}
    assert report.rows <= sum(not r["correct"] for r in rows_in)


def test_value_rollouts_recorded_per_solution_are_counted_once_and_mismatches_named():
    row = _label_row("a", ["k0", "k1", "k2", ""], [0, 0, 2, 0])
    twice = _rollouts("k2", [WRONG, (True, "#### 10")]) * 2  # the naive scheduler: once per solution
    rows, _ = value_triples([row], twice, None, seed=0)
    assert [r["value"] for r in rows] == [0.5]
    with pytest.raises(ValueError, match=r"label row 0 \(question 'a'\), step 2: .* counts 2 rollouts but the "
                                         r"rollouts table holds 1"):
        value_triples([row], _rollouts("k2", [WRONG]), None, seed=0)
    with pytest.raises(ValueError, match=r"label row 0 .* missing 'prefix_keys'"):
        value_triples([{k: v for k, v in row.items() if k != "prefix_keys"}], [], None, seed=0)


def test_value_rows_are_capped_per_question_and_deduplicated_by_draft():
    drafts = [DRAFT.replace("#### 9", f"#### {v}").replace("= 9", f"= {v}") for v in range(11, 15)]
    rows_in = [_label_row("a", [f"k{n}0", f"k{n}1", f"k{n}2", ""], [0, 0, 1, 0], solution=d)
               for n, d in enumerate(drafts)]
    rows_in.append(dict(rows_in[0]))  # the same draft twice gives one row
    rollouts = [r for n in range(4) for r in _rollouts(f"k{n}2", [(True, "#### 10")])]
    assert len(value_triples(rows_in, rollouts, None, seed=0)[0]) == 4
    capped, report = value_triples(rows_in, rollouts, 2, seed=0)
    assert len(capped) == 2 and report.questions_capped == 1


# ---------------------------------------------------------------- App. J: the test-time policy


@pytest.mark.parametrize("scores, best, bad", [
    ([0.6, 0.8, 0.3, 0.1], 1, 2),
    ([0.6, 0.8, 0.8, 0.2], 2, 3),  # a tie goes to the later step, as in the training data
    ([0.2, 0.4, 0.9], 2, None),  # the whole draft has the highest value: nothing to refine
    ([0.9, 0.9], 1, None),  # tied with the last step: the later step, so no refinement
    ([0.7], 0, None),
    ([], None, None),
    ([float("nan"), 0.1, 0.05], 1, 2),  # NaN never wins
    ([float("nan"), float("nan")], 1, None),
])
def test_value_bad_step_is_after_the_orm_argmax(scores, best, bad):
    assert highest_value_step(scores) == best
    assert value_bad_step(scores) == bad
    if bad is not None:  # it is a valid [BAD] position for the local refiner's prompt
        assert how.local_prompt("q", "\n".join(f"{n} + 0 = {n}" for n in range(len(scores))), bad)


# ---------------------------------------------------------------- the report


def _rm_row(step, final):
    return {"step": {"accuracy": step, "fp_rate": 0.1, "fn_rate": 0.2}, "final": {"accuracy": final},
            "first_error_accuracy": 0.5}


def test_report_shows_the_variants_with_the_appendix_numbers(tmp_path):
    from glore_ray import report

    stage = tmp_path / "reward_models" / "sorm_filtered"
    stage.mkdir(parents=True)
    counts = {"self_filter_rows_in": 10, "self_filter_rows_kept": 7, "self_filter_rows_dropped": 3,
              "self_filter_rows_unlabelled": 2, "self_filter_labels_in": 30, "self_filter_labels_dropped": 9}
    (stage / "manifest.json").write_text(json.dumps({"counts": counts}))
    results = {"reward_models": {k: _rm_row(0.6, 0.7) for k in ("orm", "balanced_orm", "sorm", "contrastive_orm",
                                                                 "sorm_filtered")},
               "student": {"rerank_heuristics": {"orm": {"final": 0.6}, "contrastive_orm": {"final": 0.4}}}}
    text = report._reward_models(tmp_path, results)
    assert "| contrastive_orm | 0.600 |" in text and "| sorm_filtered | 0.600 |" in text
    assert "App. F" in text and "0.47" in text and "0.56" in text and "Rerank@K 0.400" in text
    assert "App. I" in text and "kept 7 of 10" in text and "dropped 3, 2 of them" in text and "0.79" in text
    value = {"fix_rate": 0.25, "all_drafts": 0.5, "damage_rate": 0.1, "refined_drafts": 6, "no_value_step": 2,
             "compare": {"local+sorm": 0.3, "global": 0.35}}
    lines = "\n".join(report._value_refinement(value))
    assert "App. J" in lines and "| value | 0.250 | 0.140 |" in lines and "| local+sorm | 0.300 | 0.210 |" in lines
    # Results written before the variants existed still render (no extra rows, no App. J).
    old = {"reward_models": {k: _rm_row(0.6, 0.7) for k in ("orm", "balanced_orm", "sorm")}}
    assert "App. F" not in report._reward_models(tmp_path, old) and report._value_refinement(None) == []
    assert not math.isnan(report.PAPER_APP_J_GLOBAL_OVER_VALUE)


# ---------------------------------------------------------------- wiring


def test_value_refiner_and_extra_rms_join_the_pipeline_only_when_configured(tmp_path):
    from glore_ray.config import load_config
    from glore_ray.stages.models import run_refiner
    from glore_ray.stages.pipeline import pipeline_steps

    base = load_config(None, [f"run.run_dir={tmp_path}"])
    names = [s.name for s in pipeline_steps(base)]
    assert "refiners/value" not in names and "reward_models/contrastive_orm" not in names
    on = load_config(None, [f"run.run_dir={tmp_path}", "refine.value_refinement=true",
                            "pipeline.extra_reward_models=[contrastive_orm, sorm_filtered]"])
    names = [s.name for s in pipeline_steps(on)]
    assert names.index("reward_models/sorm") < names.index("reward_models/sorm_filtered") < names.index("refine_data")
    assert names.index("refiners/value") < names.index("evaluate")
    with pytest.raises(ValueError, match="refine.value_refinement=true"):
        run_refiner(base, "value")
    assert not (tmp_path / "refiners").exists()  # refused before any stage directory was made
