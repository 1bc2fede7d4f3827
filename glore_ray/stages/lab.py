"""The reward-model lab (docs/reward-models.md): one reward-model recipe, trained on a finished
run by the main job's own stages and scored on enough held-out drafts to tell recipes apart.

A *variant* is the run's config plus dotted overrides (``labels.orm_k=16``,
``training.rm.epochs=2``) and a reward-model kind. It lives in ``<run>/lab/variants/<name>/``, a
run directory whose upstream stages are the run's own, linked, wherever the variant leaves their
config alone, and computed afresh where it does not (``labels.orm_k=16``: a new ``orm_data``).
The student is never retrained: a variant that would change it is refused.

Every model is scored on the final student's greedy drafts of ``n`` extra questions of the tiny
world (split ``lab``, none of them a train or test question), against the exact oracle's step
labels: the columns of the SORM-vs-ORM comparison (paper Tables 1-2 without their 0.5 cut; the
threshold-free ones of docs/faithful-world.md), with n drafts behind each instead of the test
split's 200. Scores are cached per model, so a killed sweep of variants resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from glore_ray.artifacts import Stage, StageError, write_atomic
from glore_ray.config import Config, load_config
from glore_ray.metrics import auc_standard_error, first_error_f1
from glore_ray.stages.common import sample_table, student_checkpoint

LAB = "lab"
# Upstream stages a variant may share with its run, in the order they run.
SHARED_STAGES = ("data", "student", "orm_data", "sorm_labels", "sorm_soft_labels", "reward_models/sorm")


def lab_questions(cfg: Config, n: int) -> list[dict]:
    """``n`` question rows of the run's tiny world that are neither train nor test questions."""
    if cfg.data.task != "tiny":
        raise ValueError(f"the reward-model lab scores against the tiny world's exact step labels; "
                         f"data.task is {cfg.data.task!r}")
    from itertools import islice

    from glore_ray.stages.data import questions
    from glore_ray.tasks.tiny_world import iter_problems

    # iter_problems refuses, naming the knobs, a world too small to give n more questions.
    seen = {q["question"] for split in ("train", "test") for q in questions(cfg, split)}
    fresh = (p for p in iter_problems(cfg.run.seed, LAB, cfg.data.tiny_world, want=n) if p.question not in seen)
    return [p.to_row() for p in islice(fresh, n)]


def lab_drafts(cfg: Config, n: int, force: bool = False) -> list[dict]:
    """The final student's greedy drafts of ``n`` lab questions, each with its prompt, solution
    (the steps as the reward models read them), correctness and exact step labels (stage
    ``lab/drafts_<n>``, resumable)."""
    from glore_ray.rollout.engine import RolloutRequest
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.steps import join_steps, split_steps
    from glore_ray.tasks.tiny_oracle import exact_step_labels
    from glore_ray.tasks.tiny_world import TinyProblem

    student = student_checkpoint(cfg)
    digest = hashlib.sha256(f"{cfg.digest('data', 'run.seed')}/{student}/{n}".encode()).hexdigest()[:16]
    stage = Stage(cfg.run.run_dir, f"{LAB}/drafts_{n}", digest, force)
    if stage.done:
        return stage.read_table("drafts")
    qs = {q["id"]: q for q in lab_questions(cfg, n)}
    requests = [RolloutRequest(q["id"], student_prompt(q["question"]), answer=q["answer"], greedy=True)
                for q in qs.values()]
    rows = []
    for d in sorted(sample_table(cfg, stage, "greedy", student, requests, cfg.student.max_new_tokens),
                    key=lambda r: r["question_id"]):
        steps = split_steps(d["text"])
        if not steps:
            continue  # nothing for a reward model to score (as the test drafts of the main job)
        solution = join_steps(steps)
        q = qs[d["question_id"]]
        rows.append({"question_id": q["id"], "prompt": student_prompt(q["question"]), "solution": solution,
                     "correct": bool(d["correct"]),
                     "exact": exact_step_labels(TinyProblem.from_row(q), solution)})
    stage.write_table("drafts", rows)
    stage.finish({"questions": n, "drafts": len(rows), "correct": sum(r["correct"] for r in rows)},
                 inputs={"student": student})
    return rows


def variant_config(config_path: str, run_overrides: list[str], name: str, overrides: list[str]) -> Config:
    """The variant's config: the run's, its overrides on top, in its own run directory."""
    run_cfg = load_config(config_path, run_overrides)
    return load_config(config_path, [*run_overrides, *overrides,
                                     f"run.run_dir={Path(run_cfg.run.run_dir) / LAB / 'variants' / name}"])


def train_variant(run_cfg: Config, var_cfg: Config, kind: str) -> dict:
    """Train reward model ``kind`` in the variant's run directory, sharing the run's upstream
    stages where their config is unchanged; its manifest (checkpoint, rows, seconds)."""
    from glore_ray.stages.data import run_data
    from glore_ray.stages.labels import run_orm_data, run_sorm_labels, run_sorm_soft_labels
    from glore_ray.stages.models import RM_KINDS, run_reward_model
    from glore_ray.stages.student import run_student

    if kind not in RM_KINDS or kind == "stepwise":
        raise ValueError(f"--kind must be one of {[k for k in RM_KINDS if k != 'stepwise']}, got {kind!r}")
    needs = ["data", "student", "orm_data"]
    if kind.startswith("sorm"):
        needs.append("sorm_labels")
    if kind == "sorm_soft":
        needs.append("sorm_soft_labels")
    if kind == "sorm_filtered":
        needs.append("reward_models/sorm")
    runners: dict[str, Callable[[Config], dict]] = {
        "data": run_data, "student": run_student, "orm_data": run_orm_data, "sorm_labels": run_sorm_labels,
        "sorm_soft_labels": run_sorm_soft_labels, "reward_models/sorm": lambda c: run_reward_model(c, "sorm")}
    for name in needs:
        _shared_or_own(Path(run_cfg.run.run_dir), Path(var_cfg.run.run_dir), name, runners[name], var_cfg)
    return run_reward_model(var_cfg, kind)


def _shared_or_own(run: Path, variant: Path, name: str, runner: Callable[[Config], dict], cfg: Config) -> dict:
    """Run stage ``name`` for the variant on the run's finished output (a link) when the stage's
    digest accepts it, else on its own."""
    link = variant / name
    if not link.exists() and not link.is_symlink() and (run / name / "manifest.json").exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((run / name).resolve(), target_is_directory=True)
    try:
        return runner(cfg)
    except StageError as err:
        if not link.is_symlink() or "another config" not in str(err):
            raise
        if name in ("data", "student"):
            raise StageError(f"the variant changes the {name} stage of {run} (its overrides touch what the "
                             f"{name} stage depends on); the lab varies reward models only") from None
        link.unlink()  # the variant's config differs here: its own stage
        return runner(cfg)


def cached_scores(cfg: Config, model_path: str, drafts: list[dict], logprob: bool = False) -> list[list[float]]:
    """Per-step scores of ``model_path`` on ``drafts`` (a reward model's probabilities, or with
    ``logprob`` a causal LM's mean token log-probs), cached under ``<run>/lab/scores``."""
    from glore_ray.stages.evaluate import _scorer

    texts = json.dumps([[d["prompt"], d["solution"]] for d in drafts])
    # The checkpoint's files as they are now: a model trained again in the same place is scored again.
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(model_path).resolve().iterdir())
    key = hashlib.sha256(f"{Path(model_path).resolve()}/{files}/{logprob}/{texts}".encode()).hexdigest()[:16]
    path = Path(cfg.run.run_dir) / LAB / "scores" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = _scorer(cfg, logprob)(model_path, [d["prompt"] for d in drafts], [d["solution"] for d in drafts])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(scores)))
    return scores


def lab_metrics(scores: list[list[float]], drafts: list[dict], probabilities: bool = True) -> dict:
    """The lab's columns for one model: final AUC (with its standard error), step AUC against the
    exact oracle pooled and within position, and (probabilities only) first-error F1."""
    from glore_ray.stages.evaluate import threshold_free

    correct = [d["correct"] for d in drafts]
    exact = [d["exact"] for d in drafts]
    row = threshold_free(scores, correct, exact, probabilities=False)
    row["final_auc_se"] = auc_standard_error(row["final_auc"], sum(correct), len(correct) - sum(correct))
    if probabilities:
        row["first_error"] = first_error_f1(scores, exact)
    return row


def score_variant(run_cfg: Config, name: str, model_path: str, drafts: list[dict], info: dict,
                  probabilities: bool = True, logprob: bool = False) -> dict:
    """Score one model on the lab drafts and record it in ``<run>/lab/results.json``."""
    t0 = time.time()
    scores = cached_scores(run_cfg, model_path, drafts, logprob)
    entry = {**info, "model": model_path, "drafts": len(drafts), "score_seconds": round(time.time() - t0, 1),
             **lab_metrics(scores, drafts, probabilities)}
    path = Path(run_cfg.run.run_dir) / LAB / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = entry
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(results, indent=2, default=str)))
    return entry


def lab_results(run_cfg: Config) -> dict:
    path = Path(run_cfg.run.run_dir) / LAB / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}
