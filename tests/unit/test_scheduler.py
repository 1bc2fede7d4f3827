"""The efficient SORM scheduler gives the naive procedure's labels for far fewer rollouts."""

from __future__ import annotations

import dataclasses

import pytest
from labeling_fakes import FakeVerifier, make_samples

from glore_ray.config import LabelConfig
from glore_ray.labeling.refine_pairs import local_triples
from glore_ray.labeling.scheduler import efficient_labels, naive_labels, soft_labels, sorm_labels
from glore_ray.labeling.sorm import VerifyResult
from glore_ray.tasks.steps import step_result


@pytest.fixture(scope="module")
def world():
    return make_samples(60, 5)  # 300 solutions, about half incorrect


def _both(world, **overrides):
    problems, samples = world
    config = dataclasses.replace(LabelConfig(), **overrides)
    return (naive_labels(samples, FakeVerifier(problems), config),
            efficient_labels(samples, FakeVerifier(problems), config))


@pytest.mark.parametrize("overrides", [
    {},
    {"sorm_chunk": 1},
    {"sorm_chunk": 8},
    {"sorm_chunk": 3, "sorm_k": 5},
    {"strict_consistency": True},
    {"consistency": False},
])
def test_efficient_labels_equal_naive_and_cost_much_less(world, overrides):
    naive, fast = _both(world, **overrides)
    assert [r["labels"] for r in fast.rows] == [r["labels"] for r in naive.rows]
    assert len(fast.rows) == 300
    # Not a trivial world: both classes and every kind of label pattern occur.
    patterns = {tuple(r["labels"]) for r in naive.rows}
    assert any(0 < sum(p) < len(p) for p in patterns) and any(sum(p) == 0 for p in patterns)
    # Measured on this world: 0.14 (no consistency check) to 0.41 (sorm_k 5, chunks of 3) of the naive cost.
    assert fast.stats.rollouts_requested < 0.45 * naive.stats.rollouts_requested
    assert fast.stats.tokens_generated < 0.45 * naive.stats.tokens_generated
    assert fast.stats.rollouts_requested == len(fast.rollouts)


def test_efficient_rollouts_are_the_naive_ones(world):
    naive, fast = _both(world)
    by_key = {(r["prefix_key"], r["sample_index"]): r["text"] for r in naive.rollouts}
    assert all(by_key[(r["prefix_key"], r["sample_index"])] == r["text"] for r in fast.rollouts)
    assert len({(r["prefix_key"], r["sample_index"]) for r in fast.rollouts}) == len(fast.rollouts)  # no repeats


def test_local_refinement_targets_equal_naive(world):
    naive, fast = _both(world)
    assert local_triples(fast.rows, None, seed=0)[0] == local_triples(naive.rows, None, seed=0)[0]


def test_without_rule1_raw_labels_equal_naive(world):
    naive, fast = _both(world, propagate_positive=False)
    assert [r["labels"] for r in fast.rows] == [r["raw_labels"] for r in naive.rows]
    assert naive.stats.labels_by_rule1 == 0 and fast.stats.labels_by_rule1 == 0
    # Early stop and de-duplication still save rollouts; correct solutions now need them too.
    assert fast.stats.rollouts_requested < 0.6 * naive.stats.rollouts_requested
    assert fast.stats.prefixes_deduplicated > 0


def test_waves_batch_across_solutions(world):
    problems, samples = world
    verifier = FakeVerifier(problems)
    result = efficient_labels(samples, verifier, LabelConfig(sorm_chunk=2, sorm_k=8))
    max_prefixes = max(len(r["labels"]) for r in result.rows) - 1
    assert result.stats.waves <= max_prefixes * 4  # ceil(K / chunk) rounds per prefix depth
    assert verifier.calls[0] > 100  # the first wave asks for every incorrect solution at once
    assert sum(verifier.calls) == result.stats.rollouts_requested


def test_sorm_labels_dispatches_on_config(world):
    problems, samples = world
    small = samples[:20]
    assert sorm_labels(small, FakeVerifier(problems), LabelConfig(scheduler="naive")).stats.waves == 0
    assert sorm_labels(small, FakeVerifier(problems), LabelConfig()).stats.waves > 0


# --- hand-built cases --------------------------------------------------------------------------

PROMPT = "Q: Ava has 5 pens.\nA: "


def _sample(text, correct, qid="q"):
    return {"question_id": qid, "question": "Ava has 5 pens.", "prompt": PROMPT, "text": text, "correct": correct,
            "answer": "20"}


class Scripted:
    """Rollout success decided by a table {(prefix last line, sample index): success}."""

    def __init__(self, wins):
        self.wins, self.calls = wins, []

    def __call__(self, batch):
        self.calls.append([(r.prefix.splitlines()[-1], r.sample_index) for r in batch])
        out = []
        for r in batch:
            win = self.wins.get((r.prefix.splitlines()[-1], r.sample_index), False)
            # A win uses the prefix's last result R_i, so it passes the consistency check.
            text = f"{step_result(r.prefix.splitlines()[-1])} + 5 = 20\n#### 20" if win else "#### 3"
            out.append(VerifyResult(text, win, 3))
        return out


WRONG = "2 + 3 = 5\n5 * 3 = 15\n15 + 1 = 16\n#### 16"


def test_correct_solution_needs_no_rollouts():
    verifier = Scripted({})
    result = efficient_labels([_sample("2 + 3 = 5\n5 * 4 = 20\n#### 20", True)], verifier, LabelConfig())
    assert result.rows[0]["labels"] == [1, 1, 1] and verifier.calls == []
    assert result.stats.labels_by_rule1 == 2


def test_scan_stops_at_first_positive_from_the_end():
    # P_2 and P_1 fail all 8 samples; P_0 succeeds at its 4th: chunks of 2 stop it after 4.
    verifier = Scripted({("2 + 3 = 5", 3): True})
    result = efficient_labels([_sample(WRONG, False)], verifier, LabelConfig(sorm_chunk=2))
    assert result.rows[0]["labels"] == [1, 0, 0, 0]
    asked = [pair for call in verifier.calls for pair in call]
    assert [j for line, j in asked if line == "15 + 1 = 16"] == list(range(8))
    assert [j for line, j in asked if line == "2 + 3 = 5"] == [0, 1, 2, 3]  # stopped after the hit
    assert result.rows[0]["raw_labels"] == [1, 0, 0, 0]
    assert result.rows[0]["witnesses"][0] == "5 + 5 = 20\n#### 20"


def test_positive_late_step_decides_earlier_ones():
    verifier = Scripted({("5 * 3 = 15", 0): True})
    result = efficient_labels([_sample(WRONG, False)], verifier, LabelConfig(sorm_chunk=1))
    assert result.rows[0]["labels"] == [1, 1, 0, 0]
    assert result.rows[0]["raw_labels"] == [-1, 1, 0, 0]
    assert result.stats.rollouts_requested == 8 + 1 and result.stats.labels_by_rule1 == 1


def test_identical_prefixes_are_verified_once():
    other = "2 + 3 = 5\n5 * 3 = 15\n15 + 2 = 17\n#### 17"  # shares P_0 and P_1 with WRONG
    samples = [_sample(WRONG, False), _sample(other, False), _sample(WRONG, False, qid="q2")]
    result = efficient_labels(samples, Scripted({}), LabelConfig())
    assert result.stats.prefixes_verified == 7  # q: P_0, P_1, two different P_2; q2: 3
    assert result.stats.rollouts_requested == 8 * result.stats.prefixes_verified
    assert result.stats.prefixes_deduplicated == 9 - result.stats.prefixes_verified
    assert [r["labels"] for r in result.rows] == [[0, 0, 0, 0]] * 3


def test_single_line_solution_and_empty_text():
    result = efficient_labels([_sample("#### 20", True), _sample("  \n", False)], Scripted({}), LabelConfig())
    assert [r["labels"] for r in result.rows] == [[1]]
    assert result.stats.skipped_empty == 1 and result.stats.rollouts_requested == 0


def test_bad_verifier_and_bad_rows_are_named():
    with pytest.raises(ValueError, match="one VerifyResult per request"):
        efficient_labels([_sample(WRONG, False)], lambda batch: [], LabelConfig())
    bad = _sample(WRONG, False)
    del bad["answer"]
    with pytest.raises(ValueError, match="sample 0 .*'answer'"):
        efficient_labels([bad], Scripted({}), LabelConfig())


# ---------------------------------------------------------------- binary search (OmegaPRM / EpicPRM)


def test_binary_search_equals_naive_where_raw_labels_are_monotone(world):
    """Every valid prefix succeeds and no invalid one does: raw labels fall from 1 to 0 once, and
    the binary search finds the naive procedure's last positive prefix exactly, checking fewer."""
    problems, samples = world
    verifier = FakeVerifier(problems, p_good=1.0, p_inconsistent=0.0, p_lucky=0.0)
    config = LabelConfig(sorm_chunk=1)
    naive = naive_labels(samples, verifier, config)
    incorrect = [r for r in naive.rows if not r["correct"]]  # (a correct one is all 1 by rule (1) anyway)
    assert incorrect and all(list(r["raw_labels"]) == sorted(r["raw_labels"], reverse=True) for r in incorrect)
    searched = sorm_labels(samples, verifier, dataclasses.replace(config, scheduler="binary"))
    scanned = efficient_labels(samples, verifier, config)
    assert [r["labels"] for r in searched.rows] == [r["labels"] for r in naive.rows]
    assert searched.stats.prefixes_consulted < scanned.stats.prefixes_consulted


def test_binary_search_misses_non_monotone_labels_that_the_scan_keeps(world):
    """The default world's lucky rollouts make raw labels non-monotone: the scan (ours) still
    equals naive, the binary search does not everywhere. Its rows stay monotone, correct ones all 1."""
    problems, samples = world
    naive = naive_labels(samples, FakeVerifier(problems), LabelConfig())
    searched = sorm_labels(samples, FakeVerifier(problems), LabelConfig(scheduler="binary"))
    agree = [a["labels"] == b["labels"] for a, b in zip(searched.rows, naive.rows, strict=True)]
    assert 0.5 < sum(agree) / len(agree) < 1.0
    for row in searched.rows:
        labels = list(row["labels"])
        assert labels == sorted(labels, reverse=True) and (not row["correct"] or all(labels))
    assert searched.stats.rollouts_requested == len(searched.rollouts)


def test_binary_search_needs_rule1():
    with pytest.raises(ValueError, match="binary.*propagate_positive"):
        sorm_labels([], FakeVerifier([]), LabelConfig(scheduler="binary", propagate_positive=False))
    with pytest.raises(ValueError, match="efficient, naive or binary"):
        LabelConfig(scheduler="bisect")


# ---------------------------------------------------------------- soft labels (issue 19)


@pytest.mark.parametrize("rule1", [True, False])
def test_soft_labels_threshold_to_the_naive_labels_on_the_same_rollouts(world, rule1):
    problems, samples = world
    config = LabelConfig(propagate_positive=rule1)
    naive = naive_labels(samples, FakeVerifier(problems), config)
    soft = soft_labels(samples, FakeVerifier(problems), config)
    assert [[int(y > 0) for y in r["labels"]] for r in soft.rows] == [list(r["labels"]) for r in naive.rows]
    by_key = {(r["prefix_key"], r["sample_index"]): r["text"] for r in naive.rollouts}
    assert all(by_key[(r["prefix_key"], r["sample_index"])] == r["text"] for r in soft.rollouts)
    # Every rollout of every distinct prefix: shared prefixes are the only saving.
    assert soft.stats.rollouts_requested == config.sorm_k * soft.stats.prefixes_verified
    assert soft.stats.prefixes_deduplicated > 0
    assert soft.stats.rollouts_requested < naive.stats.rollouts_requested
    fractional = [y for r in soft.rows for y in r["labels"] if 0 < y < 1]
    assert fractional and all((y * config.sorm_k).is_integer() for y in fractional)  # shares of K
    for row in soft.rows:
        assert row["labels"][-1] == float(row["correct"])
        if rule1:
            assert list(row["labels"]) == sorted(row["labels"], reverse=True)


def test_soft_label_is_the_share_of_counting_rollouts():
    # Step 1's prefix wins 2 of 4 rollouts, step 2's 1 of 4 (one more wins but is inconsistent).
    wins = {("2 + 3 = 5", 0): True, ("2 + 3 = 5", 3): True, ("5 * 3 = 15", 1): True}
    verifier = Scripted(wins)
    original = verifier.__call__

    def with_inconsistent(batch):
        out = original(batch)
        return [VerifyResult("7 + 13 = 20\n#### 20", True, 3) if (r.prefix.splitlines()[-1], r.sample_index) ==
                ("5 * 3 = 15", 2) else o for r, o in zip(batch, out, strict=True)]

    result = soft_labels([_sample(WRONG, False)], with_inconsistent, LabelConfig(sorm_k=4))
    row = result.rows[0]
    assert row["labels"] == [0.5, 0.25, 0.0, 0.0]
    assert row["raw_labels"] == [1, 1, 0, 0]
    assert result.stats.consistency_rejected == 1 and result.stats.rollouts_requested == 12
    late_win = soft_labels([_sample(WRONG, False)], Scripted({("15 + 1 = 16", 0): True}), LabelConfig(sorm_k=4))
    assert late_win.rows[0]["labels"] == [0.25, 0.25, 0.25, 0.0] and late_win.stats.labels_by_rule1 == 2
