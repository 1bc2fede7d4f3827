"""Stages ``orm_data`` and ``sorm_labels`` (paper 3.1 step 2, 3.2).

``orm_data``: K student samples per train question; every step labelled with the sample's final
correctness (ORM), the same balanced per question (balanced ORM); and the (Q, D) test set:
greedy student drafts on the test questions (paper 3.2).

``sorm_labels``: per-step labels from verification rollouts through the efficient scheduler (or
the naive baseline), post-processed; every rollout kept for audit. The test drafts are labelled
by the same procedure (without balancing), and in the tiny world also by the exact oracle.
"""

from __future__ import annotations

import hashlib

from glore_ray.artifacts import Stage
from glore_ray.config import Config
from glore_ray.labeling.orm import balanced_orm_rows, orm_rows
from glore_ray.labeling.scheduler import sorm_labels
from glore_ray.labeling.sorm import VerifyResult, balance_by_step
from glore_ray.metrics import label_agreement
from glore_ray.stages.common import sample_table, student_checkpoint
from glore_ray.stages.data import questions
from glore_ray.tasks.prompts import student_prompt

ORM, SORM = "orm_data", "sorm_labels"


def run_orm_data(cfg: Config, force: bool = False) -> dict:
    from glore_ray.rollout.engine import RolloutRequest

    stage = Stage(cfg.run.run_dir, ORM, cfg.digest("labels.orm_k", "rollout", "run.seed"), force)
    if stage.done:
        return stage.manifest
    student = student_checkpoint(cfg)
    train, test = questions(cfg, "train"), questions(cfg, "test")
    requests = [RolloutRequest(q["id"], student_prompt(q["question"]), n=cfg.labels.orm_k, answer=q["answer"],
                               round=20_000) for q in train]
    samples = with_question(sample_table(cfg, stage, "samples", student, requests, cfg.student.max_new_tokens), train)
    rows = orm_rows(samples)
    balanced, report = balanced_orm_rows(rows, seed=cfg.run.seed, keep_single_class=cfg.labels.balanced_orm_keep_single_class)
    stage.write_table("orm", rows)
    stage.write_table("balanced_orm", balanced)
    drafts = [RolloutRequest(q["id"], student_prompt(q["question"]), answer=q["answer"], greedy=True) for q in test]
    test_drafts = with_question(sample_table(cfg, stage, "test_drafts", student, drafts, cfg.student.max_new_tokens), test)
    return stage.finish(
        {"samples": len(samples), "correct": sum(s["correct"] for s in samples), "orm_rows": len(rows),
         "balanced_orm_rows": len(balanced), "test_drafts": len(test_drafts),
         "test_drafts_correct": sum(d["correct"] for d in test_drafts)},
        inputs={"student": student}, extra={"balance": report.__dict__})


def with_question(rollouts: list[dict], qs: list[dict]) -> list[dict]:
    """Rollout rows joined with their question: prompt, answer, and the solution text."""
    by_id = {q["id"]: q for q in qs}
    return [{**r, "prompt": student_prompt(by_id[r["question_id"]]["question"]),
             "question": by_id[r["question_id"]]["question"], "answer": by_id[r["question_id"]]["answer"],
             "meta": by_id[r["question_id"]].get("meta", "")} for r in rollouts]


def run_sorm_labels(cfg: Config, force: bool = False) -> dict:
    stage = Stage(cfg.run.run_dir, SORM, cfg.digest("labels", "rollout", "run.seed"), force)
    if stage.done:
        return stage.manifest
    from glore_ray.artifacts import read_table, require_done

    require_done(cfg.run.run_dir, ORM)
    student = student_checkpoint(cfg)
    orm_dir = stage.dir.parent / ORM
    samples = with_question(read_table(orm_dir / "samples"), questions(cfg, "train"))
    samples = first_per_question(samples, cfg.labels.sorm_samples_per_question)
    train = label_split(cfg, stage, student, "train", samples)
    balanced, masked = (balance_by_step(train["rows"], seed=cfg.run.seed) if cfg.labels.balance
                        else (train["rows"], 0))
    stage.write_table("sorm", balanced)
    test = label_split(cfg, stage, student, "test", with_question(read_table(orm_dir / "test_drafts"), questions(cfg, "test")))
    counts = {"train_solutions": len(train["rows"]), "test_drafts": len(test["rows"]),
              "balanced_masked": masked, "train_stats": train["stats"], "test_stats": test["stats"]}
    if cfg.data.task == "tiny":
        qmap = {q["id"]: q for split in ("train", "test") for q in questions(cfg, split)}
        counts["oracle_agreement_train"] = oracle_agreement(train["rows"], qmap)
        counts["oracle_agreement_test"] = oracle_agreement(test["rows"], qmap)
    return stage.finish(counts, inputs={"student": student, "orm_data": str(orm_dir)})


def label_split(cfg: Config, stage: Stage, student: str, split: str, samples: list[dict]) -> dict:
    """Label ``samples`` with the configured scheduler; rows and every rollout go to Parquet."""
    result = sorm_labels(samples, rollout_verifier(cfg, stage, student, f"verify_{split}"), cfg.labels)
    stage.write_table(f"labels_{split}", result.rows)
    stage.write_table(f"rollouts_{split}", result.rollouts or [{"empty": True}])
    stats = result.stats.as_dict()
    # What the paper's procedure would cost: K rollouts from every non-final prefix.
    stats["naive_rollouts_equivalent"] = cfg.labels.sorm_k * sum(len(r["labels"]) - 1 for r in result.rows)
    return {"rows": result.rows, "stats": stats}


def rollout_verifier(cfg: Config, stage: Stage, model: str, table_prefix: str):
    """The scheduler's ``verify`` callback on the Ray Data sampler.

    Each call becomes one sampling table named by a hash of its requests, so a re-run after an
    interruption finds the calls already made on disk (content-addressed resume). The rollout of
    (question, prefix, sample j) has its seed from the prefix key and j alone, never from the
    batch it travels in: the efficient and naive schedulers see the same rollouts.
    """
    from glore_ray.rollout.engine import RolloutRequest, rollout_seed

    def verify(batch):
        requests = [RolloutRequest(v.question_id, v.prompt, prefix=v.prefix, prefix_index=0, answer=v.answer,
                                   seed_key=f"{v.seed_key}#{v.sample_index}") for v in batch]
        digest = hashlib.sha256("\n".join(r.seed_key for r in requests).encode()).hexdigest()[:16]
        rows = sample_table(cfg, stage, f"{table_prefix}/{digest}", model, requests, cfg.labels.sorm_max_new_tokens)
        by_seed = {(r["question_id"], r["seed"]): r for r in rows}
        out = []
        for req in requests:
            row = by_seed[(req.question_id, rollout_seed(cfg.run.seed, req.question_id, 0, 0, 0, req.seed_key))]
            out.append(VerifyResult(row["text"], bool(row["correct"]), int(row["num_tokens"])))
        return out

    return verify


def first_per_question(samples: list[dict], n: int | None) -> list[dict]:
    if n is None:
        return samples
    kept, count = [], {}
    for s in sorted(samples, key=lambda r: (r["question_id"], r["sample_index"])):
        if count.get(s["question_id"], 0) < n:
            count[s["question_id"]] = count.get(s["question_id"], 0) + 1
            kept.append(s)
    return kept


def oracle_agreement(rows: list[dict], qmap: dict[str, dict]) -> dict:
    """App. G: how often the SORM data labels equal the tiny world's exact labels."""
    from glore_ray.tasks.tiny_world import TinyProblem, exact_step_labels

    labels, exact = [], []
    for row in rows:
        problem = TinyProblem.from_row(qmap[row["question_id"]])
        labels.append(row["labels"])
        exact.append(exact_step_labels(problem, row["solution"]))
    return label_agreement(labels, exact)
