"""The whole pipeline end to end on the smallest tiny world (issue 9), asserting on its artifacts."""

import json
from pathlib import Path

import pytest

from glore_ray.artifacts import read_table

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"  # as conftest.SMOKE_CONFIG


def in_unit(x) -> bool:
    return x != x or 0.0 <= x <= 1.0  # NaN allowed only where a set is empty


def test_every_stage_finished_with_consistent_counts(smoke_run):
    cfg, summary, logs = smoke_run
    run = Path(cfg.run.run_dir)
    for stage in ("data", "student", "orm_data", "sorm_labels", "refine_data", "evaluate",
                  "reward_models/orm", "reward_models/balanced_orm", "reward_models/sorm",
                  "refiners/global", "refiners/local", "sorm_soft_labels", "reward_models/sorm_soft"):
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


def test_interrupted_stage_resumes_to_the_same_artifacts(smoke_run):
    """An interrupted SORM stage (its manifest never written, some label shards lost, a
    half-written temp file left behind) is redone from what is on disk: only the missing shards
    are labelled again, it ends with the same labels and audit rollouts as the uninterrupted run,
    and the finished stages before it are not touched."""
    import shutil

    from glore_ray.stages.labels import run_sorm_labels

    cfg, _, _ = smoke_run
    stage = Path(cfg.run.run_dir) / "sorm_labels"
    tables = ("labels_train", "labels_test", "rollouts_train", "rollouts_test", "sorm")
    before = {t: read_table(stage / t) for t in tables}
    shards = sorted((stage / "labels_train").glob("part-*.parquet"))
    assert len(shards) >= 2, "the smoke run should label its train solutions in several shards"
    kept = {s: s.stat().st_mtime_ns for s in shards[1::2]}
    student_mtime = (Path(cfg.run.run_dir) / "student" / "manifest.json").stat().st_mtime
    (stage / "manifest.json").unlink()
    shutil.rmtree(stage / "sorm")
    for shard in shards[::2]:
        shard.unlink()
    (stage / "labels_train" / ".tmp-999-part-00000.parquet").write_bytes(b"half a shard")
    run_sorm_labels(cfg)
    assert (stage / "manifest.json").exists()
    for table, rows in before.items():
        assert read_table(stage / table) == rows, table
    assert {s: s.stat().st_mtime_ns for s in kept} == kept  # shards on disk were not redone
    assert (Path(cfg.run.run_dir) / "student" / "manifest.json").stat().st_mtime == student_mtime


def test_walkthrough_notebook_runs_on_the_run(smoke_run):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    import os

    cfg, _, _ = smoke_run
    path = Path(__file__).resolve().parents[2] / "notebooks" / "01_glore_walkthrough.ipynb"
    nb = nbformat.read(path, as_version=4)
    os.environ["GLORE_RUN_DIR"], os.environ["GLORE_CONFIG"] = str(cfg.run.run_dir), str(CONFIG)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        del os.environ["GLORE_RUN_DIR"], os.environ["GLORE_CONFIG"]
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "first invalid step" in outputs and "Table 3" in outputs


def test_expert_iteration_invariants(smoke_run):
    """Paper 3.1 step 1: only correct samples enter D_i, no duplicates, D_i ⊇ D_{i-1}."""
    from glore_ray.labeling.expert_iteration import normalized_solution

    cfg, _, _ = smoke_run
    student = Path(cfg.run.run_dir) / "student"
    d0 = read_table(student / "round_0" / "dataset")
    d1 = read_table(student / "round_1" / "dataset")
    key = lambda r: (r["question_id"], normalized_solution(r["target"]))  # noqa: E731
    assert d1[: len(d0)] == d0  # D_1 ⊇ D_0, in order
    assert len({key(r) for r in d1}) == len(d1)  # no duplicates
    correct = {(s["question_id"], normalized_solution(s["text"]))
               for s in read_table(student / "round_1" / "rollouts") if s["correct"]}
    assert {key(r) for r in d1[len(d0):]} <= correct  # every new row is a correct sample
    rounds = json.loads((student / "rounds.json").read_text())
    assert len(rounds) == 1 + cfg.student.max_rounds and rounds[1]["new_unique"] == len(d1) - len(d0)


def test_killed_pipeline_resumes_to_the_same_artifacts(smoke_run):
    """Issue 9: SIGKILL the pipeline job mid-stage (evaluate, after its first rollout shard is on
    disk), re-run it: it finishes with the same artifacts as the uninterrupted run, keeps the shard
    written before the kill, and touches no earlier stage. The job runs as a real process on the
    session's Ray cluster, as ``ray job submit`` would run it."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    import ray

    from glore_ray.stages.pipeline import run_pipeline

    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    stage = run / "evaluate"
    before = {"results": json.loads((stage / "results.json").read_text()),
              "refinements": read_table(stage / "refinements"),
              "report": _without_stage_timings((run / "report" / "report.md").read_text())}
    earlier = {p: p.stat().st_mtime_ns for p in run.glob("*/manifest.json") if p.parent.name != "evaluate"}
    earlier |= {p: p.stat().st_mtime_ns for p in run.glob("*/*/manifest.json")}
    shutil.rmtree(stage)
    shutil.rmtree(run / "report", ignore_errors=True)

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    job = subprocess.Popen([sys.executable, "jobs/pipeline.py", "--config", str(CONFIG), f"run.run_dir={run}"],
                           cwd=repo, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_shard = stage / "refine_global" / "part-00000.parquet"
    deadline = time.time() + 600
    while not first_shard.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert first_shard.exists(), "the job ended before evaluate wrote its first shard"
    assert not (stage / "manifest.json").exists(), "the job finished before it could be killed mid-stage"
    kept = first_shard.stat()

    logs = []
    run_pipeline(cfg, log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    redone = [line for line in logs if ": done in" in line]
    assert len(redone) == 1 and "evaluate" in redone[0], logs  # only the interrupted stage ran
    again = first_shard.stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not resampled
    assert json.loads((stage / "results.json").read_text()) == before["results"]
    assert read_table(stage / "refinements") == before["refinements"]
    assert _without_stage_timings((run / "report" / "report.md").read_text()) == before["report"]
    assert {p: p.stat().st_mtime_ns for p in earlier} == earlier


def _without_stage_timings(report: str) -> str:
    """The report less its "Stages" table, whose seconds differ between runs (and which another
    test in this module changes by redoing sorm_labels)."""
    head, found, rest = report.partition("## Stages")
    return head + (rest[rest.index("\n## "):] if found and "\n## " in rest else "")


def test_service_on_the_run_answers_what_evaluation_measured(smoke_run):
    """The trained checkpoints behind real HTTP (docs/architecture.md §7): the service's draft of a test question
    is the evaluation's greedy draft of it, the same text, because both decode through the same
    rollout layer; the trace scores it with the run's ORM; and on evaluation's drafts the service
    decides what evaluation's policy column measured (both call glore_ray.decide)."""
    import requests
    import serve_models
    from ray import serve

    from glore_ray.config import load_config
    from glore_ray.serving.app import build_app
    from glore_ray.serving.launch import checkpoint_loaders

    cfg, _, _ = smoke_run
    cfg = load_config(CONFIG, [f"run.run_dir={cfg.run.run_dir}", "serve.cpus_per_replica=0.1", "serve.ingress_cpus=0.1",
                               "serve.app_name=glore_run"])
    drafts = {d["question_id"]: d for d in read_table(Path(cfg.run.run_dir) / "orm_data" / "test_drafts")}
    questions = [q for q in read_table(Path(cfg.run.run_dir) / "data" / "questions_test")
                 if drafts[q["id"]]["finished"]][:3]
    assert questions, "no finished test draft to compare against"
    with serve_models.http_serve() as url:
        serve.run(build_app(cfg, checkpoint_loaders(cfg)), name=cfg.serve.app_name, route_prefix="/")
        for q in questions:
            r = requests.post(f"{url}/v1/refine", timeout=120, json={
                "question": q["question"], "options": {"max_new_tokens": cfg.student.max_new_tokens}})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["candidates"][0]["kind"] == "draft" and body["draft_source"] == "student"
            assert body["candidates"][0]["text"] == drafts[q["id"]]["text"], q["id"]
            assert 0.0 <= body["draft_score"] <= 1.0 and body["answer"] == body["chosen"]["answer"]
        # The policy: given evaluation's draft, the service makes evaluation's decision (refined or
        # not, the bad step, the chosen candidate and its answer), refined drafts first.
        run = Path(cfg.run.run_dir)
        decisions = read_table(run / "evaluate" / "policy_decisions")
        solutions = {r["question_id"]: r["solution"] for r in read_table(run / "sorm_labels" / "labels_test")}
        test = {q["id"]: q for q in read_table(run / "data" / "questions_test")}
        for d in sorted(decisions, key=lambda d: (not d["refined"], d["question_id"]))[:3]:
            r = requests.post(f"{url}/v1/refine", timeout=120, json={
                "question": test[d["question_id"]]["question"], "draft": solutions[d["question_id"]],
                "options": {"max_new_tokens": cfg.refine.max_new_tokens}})
            assert r.status_code == 200, r.text
            body = r.json()
            served = {k: body[k] for k in ("refined", "bad_step", "answer")} | {"chosen": body["chosen"]["kind"]}
            assert served == {k: d[k] for k in ("refined", "bad_step", "answer", "chosen")}, d["question_id"]


def test_first_error_job_on_a_trained_sorm_reproduces_the_reports_calibrated_f1(smoke_run, tmp_path):
    """Issue 19, item 3, through the real path: the evaluate stage's ProcessBench files, the
    smoke run's trained SORM, the job as a user runs it."""
    import subprocess
    import sys

    from glore_ray.stages.models import model_checkpoint

    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    results = json.loads((run / "evaluate" / "results.json").read_text())
    files = run / "evaluate" / "first_errors"
    records = json.loads((files / "test_drafts.json").read_text())
    assert len(records) == results["n_test_drafts"]
    assert all(set(r) == {"id", "problem", "steps", "final_answer_correct", "label"} for r in records)
    assert any(r["label"] >= 0 for r in records)  # the smoke student errs on most drafts (F1 may be NaN)
    import os

    repo = CONFIG.parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}  # this checkout's glore_ray, whatever is installed
    job = [sys.executable, str(repo / "jobs" / "first_errors.py"),
           "--model", model_checkpoint(cfg.run.run_dir, "reward_models/sorm"), "--records", str(files / "test_drafts.json")]
    done = subprocess.run(job + ["--calibration", str(files / "calibration.json"), "--predictions", str(tmp_path / "p.jsonl")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    expected = results["reward_models"]["sorm"]["first_error_calibrated"]
    assert out["threshold"] == pytest.approx(expected["threshold"], abs=1e-4)
    for key in ("erroneous", "clean", "f1", "n_erroneous", "n_clean"):
        assert out[key] == pytest.approx(expected[key], nan_ok=True), key
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == len(records)
    refused = subprocess.run(job + ["--calibration", str(files / "test_drafts.json")], capture_output=True, text=True,
                             timeout=300, env=env)
    assert refused.returncode == 2 and "is the records file" in refused.stderr
    report = (run / "report" / "report.md").read_text()
    assert "F1 at calibrated τ (τ)" in report


def test_soft_labels_share_the_hard_labels_rollouts_and_train_a_sorm(smoke_run):
    """Issue 19, item 2: soft labels for the SORM's solutions from all K rollouts of each prefix;
    thresholded, they are the hard labels (the stage checks it, and so does this test, from the
    tables on disk); they cost more rollouts, the report says how many; sorm_soft is trained on
    them, masked where the hard SORM's rows were, and scored in Tables 1-2."""
    from glore_ray.labeling.stepwise import read_stepwise
    from glore_ray.stages.labels import soft_table, sorm_table

    cfg, _, _ = smoke_run
    run = Path(cfg.run.run_dir)
    soft, hard = soft_table(run, "labels_train"), sorm_table(run, "labels_train")
    assert [[int(y > 0) for y in r["labels"]] for r in soft] == [list(r["labels"]) for r in hard]
    assert all(0 <= y <= 1 for r in soft for y in r["labels"])
    counts = json.loads((run / "sorm_soft_labels" / "manifest.json").read_text())["counts"]
    rollouts = read_table(run / "sorm_soft_labels" / "rollouts_train")
    assert counts["train_stats"]["rollouts_requested"] == len(rollouts) == \
        cfg.labels.sorm_k * counts["train_stats"]["prefixes_verified"]
    assert counts["train_stats"]["rollouts_requested"] >= counts["hard_train_stats"]["rollouts_requested"]
    assert set(counts["oracle_auc_train"]) == {"soft", "hard", "n_steps"}
    masked = soft_table(run, "sorm")
    assert [[y == -1 for y in r["labels"]] for r in masked] == \
        [[y == -1 for y in r["labels"]] for r in sorm_table(run, "sorm")]
    exported = read_stepwise(run / "sorm_soft_labels" / "stepwise" / "sorm_train.parquet")
    assert [r["labels"] for r in exported] == [r["labels"] for r in masked]
    results = json.loads((run / "evaluate" / "results.json").read_text())
    assert in_unit(results["reward_models"]["sorm_soft"]["final_auc"])
    report = (run / "report" / "report.md").read_text()
    assert "| soft (every rollout) | " + str(counts["train_stats"]["rollouts_requested"]) in report
    assert "| sorm_soft |" in report


def test_stepwise_export_trains_the_same_sorm_as_the_stage(smoke_run):
    """Issue 19, item 4: the labels stage's stepwise table (Parquet, the common layout) holds the
    SORM's training rows exactly, and training on it from its path gives the stage's SORM, bit
    for bit (the round trip: export, re-import, train)."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from glore_ray.config import ConfigError
    from glore_ray.labeling.stepwise import read_stepwise
    from glore_ray.stages.labels import sorm_table, stepwise_path
    from glore_ray.stages.models import model_checkpoint, run_reward_model

    cfg, _, _ = smoke_run
    path = stepwise_path(cfg.run.run_dir)
    fields = ("question_id", "prompt", "solution", "labels")
    assert read_stepwise(path) == [{k: r[k] for k in fields} for r in sorm_table(cfg.run.run_dir, "sorm")]
    with pytest.raises(ConfigError, match="--data"):
        run_reward_model(cfg, "sorm", data=str(path))
    try:
        run_reward_model(cfg, "stepwise", data=str(path))
        ours = load_file(Path(model_checkpoint(cfg.run.run_dir, "reward_models/stepwise")) / "model.safetensors")
        stage = load_file(Path(model_checkpoint(cfg.run.run_dir, "reward_models/sorm")) / "model.safetensors")
        assert ours.keys() == stage.keys() and all(torch.equal(ours[k], stage[k]) for k in stage)
    finally:  # the other tests compare the run's stages; this one is not part of the pipeline
        shutil.rmtree(Path(cfg.run.run_dir) / "reward_models" / "stepwise", ignore_errors=True)
