"""The reward-model lab (bench/rm_lab.py) on the finished smoke run: a variant trains through the
main job's stages on the run's own upstream outputs, is scored beside the run's reward models and
the log-prob baseline, resumes from its cache, and may not change the student."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from glore_ray.artifacts import StageError

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "configs" / "smoke.yaml")


def rm_lab():
    spec = importlib.util.spec_from_file_location("rm_lab", REPO / "bench" / "rm_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lab_trains_variants_on_the_runs_stages_and_scores_them(smoke_run, capsys):
    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    lab = rm_lab()
    common = ["--config", SMOKE, "--set", f"run.run_dir={run}", "--questions", "16"]
    results = lab.main([*common, "--variant", "orm_ep2", "--kind", "orm", "training.rm.epochs=2"])
    assert {"student_logprob", "run/orm", "run/sorm", "orm_ep2"} <= set(results)
    variant = run / "lab" / "variants" / "orm_ep2"
    # Unchanged upstream stages are the run's own; the reward model is the variant's.
    assert (variant / "orm_data").is_symlink() and (variant / "student").is_symlink()
    assert (variant / "reward_models" / "orm" / "manifest.json").exists()
    assert not (variant / "reward_models").is_symlink()
    row, run_orm = results["orm_ep2"], results["run/orm"]
    assert row["rows"] == run_orm["rows"] and row["drafts"] == run_orm["drafts"] > 0
    drafts = json.loads((run / "lab" / "drafts_16" / "manifest.json").read_text())["counts"]
    assert drafts["questions"] == 16 and row["drafts"] == drafts["drafts"] <= 16
    for r in results.values():
        assert math.isnan(r["final_auc"]) or 0 <= r["final_auc"] <= 1
    assert "first_error" in row and "first_error" not in results["student_logprob"]  # log-probs have no 0.5
    assert "orm_ep2" in capsys.readouterr().out

    # Cached: scoring again trains nothing and scores nothing.
    finished = (variant / "reward_models" / "orm" / "manifest.json").stat().st_mtime
    again = lab.main([*common, "--variant", "orm_ep2", "--kind", "orm", "training.rm.epochs=2"])
    assert (variant / "reward_models" / "orm" / "manifest.json").stat().st_mtime == finished
    assert again["orm_ep2"]["final_auc"] == row["final_auc"] or math.isnan(row["final_auc"])

    # A variant that changes the ORM's data samples its own; one that changes the student is refused.
    k2 = lab.main([*common, "--variant", "orm_k2", "--kind", "orm", "labels.orm_k=2"])["orm_k2"]
    own = run / "lab" / "variants" / "orm_k2" / "orm_data"
    assert not own.is_symlink() and json.loads((own / "manifest.json").read_text())["counts"]["samples"] == \
        cfg.data.n_train * 2
    assert k2["rows"] < row["rows"]
    with pytest.raises(StageError, match="changes the student stage.*reward models only"):
        lab.main([*common, "--variant", "student3", "--kind", "orm", "training.student.epochs=3"])
