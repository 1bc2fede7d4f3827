"""The whole pipeline end to end on the smallest tiny world (issue 9), asserting on its artifacts."""

import json
from pathlib import Path

import pytest

from glore_ray.artifacts import read_table
from glore_ray.config import load_config

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_run(ray_cluster, tmp_path_factory):
    from glore_ray.stages.pipeline import run_pipeline

    cfg = load_config(CONFIG, [f"run.run_dir={tmp_path_factory.mktemp('smoke')}"])
    logs = []
    summary = run_pipeline(cfg, log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    return cfg, summary, logs


def in_unit(x) -> bool:
    return x != x or 0.0 <= x <= 1.0  # NaN allowed only where a set is empty


def test_every_stage_finished_with_consistent_counts(smoke_run):
    cfg, summary, logs = smoke_run
    run = Path(cfg.run.run_dir)
    for stage in ("data", "student", "orm_data", "sorm_labels", "refine_data", "evaluate",
                  "reward_models/orm", "reward_models/balanced_orm", "reward_models/sorm",
                  "refiners/global", "refiners/local"):
        assert (run / stage / "manifest.json").exists(), stage
    data = json.loads((run / "data" / "manifest.json").read_text())["counts"]
    assert data == {"train": cfg.data.n_train, "test": cfg.data.n_test}
    orm = json.loads((run / "orm_data" / "manifest.json").read_text())["counts"]
    assert orm["samples"] == cfg.data.n_train * cfg.labels.orm_k
    assert orm["test_drafts"] == cfg.data.n_test
    samples = read_table(run / "orm_data" / "samples")
    assert len({(s["question_id"], s["sample_index"]) for s in samples}) == len(samples)  # exactly once
    sorm = json.loads((run / "sorm_labels" / "manifest.json").read_text())["counts"]
    assert sorm["train_solutions"] <= cfg.data.n_train * cfg.labels.sorm_samples_per_question
    labels = read_table(run / "sorm_labels" / "labels_train")
    assert all(len(r["labels"]) == r["solution"].count("\n") for r in labels)
    assert any("[1/" in line for line in logs) and any("ETA" in line for line in logs)


def test_report_numbers_are_present_and_sane(smoke_run):
    cfg, summary, _ = smoke_run
    run = Path(cfg.run.run_dir)
    results = json.loads((run / "evaluate" / "results.json").read_text())
    for kind in ("orm", "balanced_orm", "sorm"):
        table = results["reward_models"][kind]
        assert in_unit(table["step"]["accuracy"]) and in_unit(table["final"]["accuracy"])
        assert in_unit(table["step_exact"]["accuracy"])  # the tiny world's exact labels
    ref = results["refinement"]
    assert set(ref["table3"]) == {"global", "local+orm", "local+sorm", "global+local+orm", "global+local+sorm"}
    assert all(in_unit(v) for v in ref["table3"].values())
    # Best-of-both can never fix fewer drafts than either refiner alone.
    assert ref["table3"]["global+local+sorm"] >= max(ref["table3"]["global"], ref["table3"]["local+sorm"]) or \
        ref["n_incorrect_drafts"] == 0
    f4 = ref["figure4"]
    assert f4["oracle"] >= max(f4["greedy"], f4["rerank_draft_global_local"])
    rounds = results["student"]["rounds"]
    assert [r["round"] for r in rounds] == list(range(len(rounds))) and all(in_unit(r["maj@1"]) for r in rounds)
    report = (run / "report" / "report.md").read_text()
    for heading in ("Table 5", "Tables 1-2", "Table 3", "Figure 4", "SORM labels"):
        assert heading in report
    assert (run / "report" / "figures.png").stat().st_size > 1000


def test_rerun_is_a_no_op(smoke_run):
    from glore_ray.stages.pipeline import run_pipeline

    cfg, _, _ = smoke_run
    logs = []
    summary = run_pipeline(cfg, log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    assert all("already done" in line for line in logs if "]" in line and ":" in line)
    assert summary["total_seconds"] < 30
