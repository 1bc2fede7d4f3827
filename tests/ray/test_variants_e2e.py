"""The paper's optional variants on the smoke run (configs/smoke.yaml turns them on): App. F
contrastive ORM, App. I self-filtered SORM, App. J value refinement (and the oracle control and the
soft-label SORM, scored as the variants are). Each test asserts on the
artifacts and numbers the run wrote; the numbers are meaningless at smoke size, their bookkeeping
is not."""

import json
from pathlib import Path

import pytest

from glore_ray.artifacts import read_table
from glore_ray.tasks.steps import join_steps, split_steps
from glore_ray.tasks.tiny_oracle import exact_step_labels
from glore_ray.tasks.tiny_world import TinyProblem

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
EXTRA_RMS = ("contrastive_orm", "sorm_filtered", "sorm_oracle", "sorm_soft")


def unit_or_nan(x, defined: bool | None) -> bool:
    """A rate in [0, 1] where it is defined (an AUC: both classes occur), NaN where it is not
    (``None``: either)."""
    if x != x:
        return defined is not True
    return 0.0 <= x <= 1.0 and defined is not False


def in_unit(x) -> bool:
    return x != x or 0.0 <= x <= 1.0  # NaN allowed only where a set is empty


def manifest(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "manifest.json").read_text())


def test_smoke_config_turns_the_variants_on(smoke_run):
    cfg, summary, _ = smoke_run
    assert cfg.refine.value_refinement and set(cfg.pipeline.extra_reward_models) == set(EXTRA_RMS)
    for stage in ("reward_models/contrastive_orm", "reward_models/sorm_filtered", "refiners/value"):
        assert stage in summary and (Path(cfg.run.run_dir) / stage / "manifest.json").exists(), stage


def test_self_filtered_sorm_accounts_for_every_sorm_row(smoke_run):
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    counts = manifest(run, "reward_models/sorm_filtered")["counts"]
    sorm_rows = read_table(run / "sorm_labels" / "sorm")
    assert counts["self_filter_rows_in"] == len(sorm_rows)
    assert counts["self_filter_rows_kept"] + counts["self_filter_rows_dropped"] == len(sorm_rows)
    assert counts["rows"] + counts["held_out"] == counts["self_filter_rows_kept"]  # what it trained on
    unlabelled = sum(all(label == -1 for label in r["labels"]) for r in sorm_rows)  # balancing masked them
    assert counts["self_filter_rows_unlabelled"] == unlabelled <= counts["self_filter_rows_dropped"]
    labelled = sum(label in (0, 1) for r in sorm_rows for label in r["labels"])
    assert counts["self_filter_labels_in"] == labelled
    assert counts["self_filter_labels_kept"] + counts["self_filter_labels_dropped"] == labelled


def test_contrastive_orm_trains_on_disjoint_pairs_and_scores_every_step(smoke_run):
    from glore_ray.models.loading import load_reward_model
    from glore_ray.stages.models import model_checkpoint

    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    counts = manifest(run, "reward_models/contrastive_orm")["counts"]
    assert counts["pairs"] == counts["rows"] + counts["held_out"] > 0
    samples = read_table(run / "orm_data" / "samples")
    assert counts["pairs"] <= len(samples) // 2  # App. F: no solution in two pairs
    # Its scores come from the same score_steps as the classifiers': one probability per step.
    labels = read_table(run / "sorm_labels" / "labels_test")
    model = load_reward_model(model_checkpoint(str(run), "reward_models/contrastive_orm"), "cpu")
    scores = model.score_steps([r["prompt"] for r in labels], [r["solution"] for r in labels])
    assert [len(s) for s in scores] == [len(r["labels"]) for r in labels]
    assert all(0.0 <= p <= 1.0 for s in scores for p in s)


def test_value_refinement_rows_follow_app_j(smoke_run):
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    counts = manifest(run, "refine_data")["counts"]
    labels = read_table(run / "sorm_labels" / "labels_train")
    incorrect = {r["solution"] for r in labels if not r["correct"]}
    assert counts["value_incorrect_solutions"] == sum(not r["correct"] for r in labels)
    rows = read_table(run / "refine_data" / "value")
    assert counts["value"] == len(rows) <= counts["value_incorrect_solutions"]
    report = manifest(run, "refine_data")["value_report"]
    assert report["rows"] == len(rows) <= report["candidates"]
    assert report["skipped"]["correct_draft"] == len(labels) - counts["value_incorrect_solutions"]
    assert sum(report["skipped"].values()) + report["candidates"] <= len(labels)  # less: drafts seen twice
    for r in rows:
        assert r["draft"] in incorrect and r["bad_step"] == r["value_step"] + 1 and 0 < r["value"] <= 1
        steps = split_steps(r["draft"])
        assert r["prompt"].count("[BAD]") == 1 and f"[BAD]{steps[r['bad_step']]}" in r["prompt"]
        assert r["target"].startswith(join_steps(steps[: r["bad_step"]]))  # P_i, then the rollout
        assert split_steps(r["target"])[r["bad_step"]] != steps[r["bad_step"]]  # it leaves the draft at S_{i+1}
    assert manifest(run, "refiners/value")["counts"]["rows"] == len(rows)


def test_variants_are_evaluated_and_reported(smoke_run):
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert "reward_models_not_trained" not in results
    for kind in EXTRA_RMS:
        table = results["reward_models"][kind]
        for metric in ("step", "final", "step_exact"):
            assert in_unit(table[metric]["accuracy"]) and in_unit(table[metric]["fp_rate"]), (kind, metric)
        assert in_unit(table["first_error_accuracy"]) and in_unit(table["first_error_accuracy_exact"])
        assert table["step"]["n"] == results["reward_models"]["sorm"]["step"]["n"]  # the same test steps
        assert in_unit(results["student"]["rerank_heuristics"][kind]["final"])

    value = results["refinement"]["value"]
    for key in ("fix_rate", "all_drafts", "damage_rate"):
        assert in_unit(value[key]), key
    assert value["fix_rate"] == results["refinement"]["figure3"]["value"]["incorrect_drafts"]
    assert value["compare"]["local+sorm"] == results["refinement"]["table3"]["local+sorm"]
    assert value["refined_drafts"] + value["no_value_step"] == results["n_test_drafts"]
    assert value["refined_incorrect_drafts"] <= results["refinement"]["n_incorrect_drafts"]
    refined = [r for r in read_table(run / "evaluate" / "refinements") if r["kind"] == "value"]
    assert len(refined) == results["n_test_drafts"]  # every draft: refined, or left as it was

    report = (run / "report" / "report.md").read_text()
    for needle in ("contrastive_orm", "sorm_filtered", "App. F", "App. I", "App. J", "| value |"):
        assert needle in report, needle
    kept = manifest(run, "reward_models/sorm_filtered")["counts"]["self_filter_rows_kept"]
    assert f"kept {kept} of" in report


def test_oracle_control_trains_on_the_sorm_solutions_with_exact_labels(smoke_run):
    """The oracle control: the same solutions as the SORM, the exact oracle's labels."""
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    counts = manifest(run, "reward_models/sorm_oracle")["counts"]
    labels = read_table(run / "sorm_labels" / "labels_train")
    assert counts["oracle_rows"] == len(labels) == counts["rows"] + counts["held_out"]
    problems = {q["id"]: TinyProblem.from_row(q) for q in read_table(run / "data" / "questions_train")}
    changed = sum(a != b for r in labels
                  for a, b in zip(r["labels"], exact_step_labels(problems[r["question_id"]], r["solution"])))
    assert counts["oracle_labels_changed"] == changed


def test_slipped_rows_enter_the_student_data_and_evaluation_measures_faithfulness(smoke_run):
    """docs/faithful-world.md: the SFT data holds the slipped-prefix rows (their prompt ends in a step), and the
    evaluation reports the threshold-free metrics, the log-prob baseline and faithfulness."""
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    d0 = read_table(run / "student" / "round_0" / "dataset")
    slipped = [r for r in d0 if not r["prompt"].endswith("A: ")]
    assert len(slipped) == round(cfg.student.slipped_rows * cfg.data.n_train) > 0
    assert all(r["prompt"].endswith("\n") for r in slipped)
    results = json.loads((run / "evaluate" / "results.json").read_text())
    # An AUC is NaN exactly when its labels hold one class (the smoke student writes few valid steps).
    drafts = [d for d in read_table(run / "orm_data" / "test_drafts") if split_steps(d["text"])]
    problems = {q["id"]: TinyProblem.from_row(q) for q in read_table(run / "data" / "questions_test")}
    exact = {y for d in drafts for y in exact_step_labels(problems[d["question_id"]], d["text"])}
    correct = {bool(d["correct"]) for d in drafts}
    for kind in ("orm", "sorm", *EXTRA_RMS):
        table = results["reward_models"][kind]
        assert unit_or_nan(table["final_auc"], len(correct) == 2)
        assert unit_or_nan(table["step_auc_exact"], len(exact) == 2)
        assert unit_or_nan(table["step_auc_exact_in_position"], len(exact) == 2 or None)
        f1 = table["first_error_f1_exact"]
        assert f1["n_erroneous"] + f1["n_clean"] == len(drafts)
        assert unit_or_nan(f1["f1"], f1["n_erroneous"] > 0 and f1["n_clean"] > 0)
    assert unit_or_nan(results["baselines"]["student_logprob"]["step_auc_exact"], len(exact) == 2)
    faith = results["faithfulness"]
    samples = read_table(run / "orm_data" / "samples")
    assert faith["student_samples"]["correct"] == sum(s["correct"] for s in samples)
    assert 0 <= faith["student_samples"]["wrong_steps"] <= faith["student_samples"]["correct"]
    assert set(faith["refiners"]) >= {"global", "local_sorm"}
    report = (run / "report" / "report.md").read_text()
    assert "right answer, wrong steps" in report.lower() and "student log-prob" in report
