"""The oracle control (docs/faithful-world.md): the SORM's training rows with the exact oracle's labels, balanced
as the SORM's were. Pure relabelling, then its wiring on a fake run directory. No Ray, no models."""

from __future__ import annotations

import pytest

from glore_ray.artifacts import Stage
from glore_ray.config import load_config
from glore_ray.labeling.oracle import oracle_rows
from glore_ray.labeling.sorm import IGNORE_STEP, balance_by_step
from glore_ray.tasks.tiny_oracle import exact_step_labels
from glore_ray.tasks.tiny_world import generate_problems

SEED = 3


def _sorm_rows(problems):
    """Unbalanced SORM-style rows: per problem the reference (labels all 1) and a slipped first
    step the rollouts happened to call good (the SORM's label is wrong at step 0)."""
    rows = []
    for p in problems:
        steps = p.reference.splitlines()
        slipped = "\n".join(["1 + 1 = 3", *steps[1:]]) + "\n"
        rows.append({"question_id": p.id, "prompt": f"Q: {p.question}\nA: ", "solution": p.reference,
                     "labels": [1] * len(steps), "correct": True})
        rows.append({"question_id": p.id, "prompt": f"Q: {p.question}\nA: ", "solution": slipped,
                     "labels": [1] + [0] * (len(steps) - 1), "correct": False})
    return rows


def test_oracle_rows_replace_only_the_labels_and_balance_like_the_sorm():
    problems = generate_problems(6, seed=0, split="train")
    by_id = {p.id: p for p in problems}
    rows = _sorm_rows(problems)
    before = [dict(r, labels=list(r["labels"])) for r in rows]

    unbalanced, counts = oracle_rows(rows, by_id, seed=None)
    exact = [exact_step_labels(by_id[r["question_id"]], r["solution"]) for r in rows]
    assert [r["labels"] for r in unbalanced] == exact
    assert all(e == [0] * len(e) for e in exact[1::2])  # the oracle overturns the slipped step
    assert counts == {"rows": len(rows), "labels_changed": len(problems), "balanced_masked": 0}
    assert rows == before  # inputs untouched
    # Same rows, same order, same columns: only the labels differ from the SORM's.
    drop = lambda r: {k: v for k, v in r.items() if k != "labels"}
    assert [drop(r) for r in unbalanced] == [drop(r) for r in rows]

    # Two more clean solutions tip every step index towards positives: balancing has work to do.
    rows += [dict(rows[0]), dict(rows[2])]
    unbalanced, _ = oracle_rows(rows, by_id, seed=None)
    balanced, counts = oracle_rows(rows, by_id, seed=SEED)
    expected, masked = balance_by_step(unbalanced, seed=SEED)  # the SORM's post-processing (3), its seed
    assert balanced == expected and counts["balanced_masked"] == masked > 0
    for step in range(max(len(r["labels"]) for r in balanced)):  # balanced: equal classes at every step
        at = [r["labels"][step] for r in balanced if len(r["labels"]) > step]
        assert at.count(1) == at.count(0)
    assert all(label in (0, 1, IGNORE_STEP) for r in balanced for label in r["labels"])


def test_oracle_rows_reject_a_row_whose_labels_do_not_match_its_steps():
    p = generate_problems(1, seed=0, split="train")[0]
    with pytest.raises(ValueError, match=rf"row 0 \(question '{p.id}'\) has 1 labels but its solution has 3 steps"):
        oracle_rows([{"question_id": p.id, "solution": p.reference, "labels": [1]}], {p.id: p}, seed=None)


def test_sorm_oracle_rm_rows_read_the_unbalanced_sorm_rows(tmp_path):
    from glore_ray.stages.models import RM_KINDS, rm_rows

    assert "sorm_oracle" in RM_KINDS
    problems = generate_problems(4, seed=1, split="train")
    data = Stage(tmp_path, "data", "d")
    data.write_table("questions_train", [p.to_row() for p in problems])
    data.finish({})
    labels = Stage(tmp_path, "sorm_labels", "l")
    rows = _sorm_rows(problems)
    labels.write_table("labels_train", rows)
    labels.write_table("sorm", balance_by_step(rows, seed=SEED)[0])
    labels.finish({})
    cfg = load_config(None, [f"run.run_dir={tmp_path}", f"run.seed={SEED}"])

    objective, oracle, counts = rm_rows(cfg, "sorm_oracle")
    _, sorm, _ = rm_rows(cfg, "sorm")
    assert objective == "step_bce" and len(oracle) == len(sorm)
    assert [(r["question_id"], r["solution"]) for r in oracle] == [(r["question_id"], r["solution"]) for r in sorm]
    assert oracle == oracle_rows(rows, {p.id: p for p in problems}, seed=SEED)[0]
    assert counts["oracle_labels_changed"] == len(problems) and counts["oracle_rows"] == len(rows)

    # A student that writes no valid step: every exact label is 0, balancing masks them all.
    only_slips = [r for r in rows if not r["correct"]]
    labels.write_table("labels_train", only_slips)
    with pytest.raises(ValueError, match=r"'sorm_oracle': balancing left no label .* 4 solutions are all one class"):
        rm_rows(cfg, "sorm_oracle")


def test_sorm_oracle_needs_the_tiny_world(tmp_path):
    from glore_ray.stages.models import rm_rows

    cfg = load_config(None, [f"run.run_dir={tmp_path}", "data.task=gsm8k"])
    with pytest.raises(ValueError, match=r"'sorm_oracle'.*data\.task is 'gsm8k'"):
        rm_rows(cfg, "sorm_oracle")
