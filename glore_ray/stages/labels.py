"""Stages ``orm_data`` and ``sorm_labels`` (paper 3.1 step 2, 3.2).

``orm_data``: K student samples per train question; every step labelled with the sample's final
correctness (ORM), the same balanced per question (balanced ORM); and the (Q, D) test set:
greedy student drafts on the test questions (paper 3.2).

``sorm_labels``: per-step labels from verification rollouts through the efficient scheduler (or
the naive baseline), post-processed; every rollout kept for audit. The test drafts are labelled
by the same procedure (without balancing), and in the tiny world also by the exact oracle.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from glore_ray.artifacts import Stage, StageError, require_done, stage_table
from glore_ray.config import Config
from glore_ray.labeling.orm import balanced_orm_rows, orm_rows
from glore_ray.labeling.scheduler import soft_labels, sorm_labels
from glore_ray.labeling.sorm import IGNORE_STEP, VerifyResult, balance_by_step
from glore_ray.labeling.stepwise import write_stepwise
from glore_ray.metrics import auc, label_agreement
from glore_ray.stages.common import sample_table, student_checkpoint
from glore_ray.stages.data import questions, sampled_questions
from glore_ray.tasks.prompts import student_prompt

ORM, SORM, SOFT = "orm_data", "sorm_labels", "sorm_soft_labels"
STEPWISE_SORM = ("stepwise", "sorm_train.parquet")  # under sorm_labels/: the ``sorm`` rows in the stepwise layout


def orm_table(run_dir, table: str) -> list[dict]:
    """An orm_data output: ``samples`` (K per train question), ``orm``, ``balanced_orm``, ``test_drafts``."""
    return stage_table(run_dir, ORM, table)


def sorm_table(run_dir, table: str) -> list[dict]:
    """A sorm_labels output: ``labels_<split>`` (before balancing), ``rollouts_<split>`` (every
    verifying rollout), ``sorm`` (the balanced training rows)."""
    return stage_table(run_dir, SORM, table)


def soft_table(run_dir, table: str) -> list[dict]:
    """A sorm_soft_labels output: ``labels_train`` (soft labels), ``rollouts_train``, ``sorm``
    (masked as the hard ``sorm`` rows were balanced)."""
    return stage_table(run_dir, SOFT, table)


def stepwise_path(run_dir) -> Path:
    """The ``sorm`` rows in the stepwise layout (labeling/stepwise.py), a finished stage's."""
    require_done(run_dir, SORM)
    return Path(run_dir, SORM, *STEPWISE_SORM)


def run_orm_data(cfg: Config, force: bool = False) -> dict:
    from glore_ray.rollout.engine import ORM_SAMPLES_ROUND, RolloutRequest

    stage = Stage(cfg.run.run_dir, ORM, cfg.digest("labels.orm_k", "labels.questions", "rollout", "run.seed"), force)
    if stage.done:
        return stage.manifest
    student = student_checkpoint(cfg)
    train = sampled_questions(questions(cfg, "train"), cfg.labels.questions, cfg.run.seed, "orm")
    test = questions(cfg, "test")
    requests = [RolloutRequest(q["id"], student_prompt(q["question"]), n=cfg.labels.orm_k, answer=q["answer"],
                               round=ORM_SAMPLES_ROUND) for q in train]
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
    student = student_checkpoint(cfg)
    train = label_split(cfg, stage, student, "train", sorm_samples(cfg))
    balanced, masked = (balance_by_step(train["rows"], seed=cfg.run.seed) if cfg.labels.balance
                        else (train["rows"], 0))
    stage.write_table("sorm", balanced)
    # The same rows in the common stepwise layout (prompt, completions, labels): for other
    # trainers, and for jobs/train_rm.py --kind stepwise --data, which trains the same SORM from it.
    write_stepwise(stage.path(*STEPWISE_SORM), balanced)
    drafts = with_question(orm_table(cfg.run.run_dir, "test_drafts"), questions(cfg, "test"))
    test = label_split(cfg, stage, student, "test", drafts)
    counts = {"train_solutions": len(train["rows"]), "test_drafts": len(test["rows"]),
              "balanced_masked": masked, "train_stats": train["stats"], "test_stats": test["stats"]}
    if cfg.data.task == "tiny":
        qmap = {q["id"]: q for split in ("train", "test") for q in questions(cfg, split)}
        counts["oracle_agreement_train"] = oracle_agreement(train["rows"], qmap)
        counts["oracle_agreement_test"] = oracle_agreement(test["rows"], qmap)
    return stage.finish(counts, inputs={"student": student, "orm_data": str(stage.dir.parent / ORM)})


def sorm_samples(cfg: Config) -> list[dict]:
    """The student samples the SORM labels (hard and soft): orm_data's, joined with their
    questions, the first ``labels.sorm_samples_per_question`` of each question."""
    samples = with_question(orm_table(cfg.run.run_dir, "samples"), questions(cfg, "train"))
    return first_per_question(samples, cfg.labels.sorm_samples_per_question)


def run_sorm_soft_labels(cfg: Config, force: bool = False) -> dict:
    """Soft SORM labels (issue 19; labeling/scheduler.py): the SORM's training solutions again,
    with all K rollouts from every prefix, so the label of a step is the share that succeed.

    The rollouts are the hard labels' own (a rollout's seed is its question, prefix and index),
    so ``label > 0`` equals the hard label of every step, and the stage checks that it does. The
    training table ``sorm`` masks exactly the steps the hard SORM's balancing masked: the soft and
    hard SORMs then differ only in their targets, and the label cost of each comes from this run.
    """
    stage = Stage(cfg.run.run_dir, SOFT, cfg.digest("labels", "rollout", "run.seed"), force)
    if stage.done:
        return stage.manifest
    require_done(cfg.run.run_dir, SORM)
    student = student_checkpoint(cfg)
    soft = label_split(cfg, stage, student, "train", sorm_samples(cfg), soft=True)
    hard_rows, balanced = sorm_table(cfg.run.run_dir, "labels_train"), sorm_table(cfg.run.run_dir, "sorm")
    # Binary search labels can differ from the naive procedure's (labeling/scheduler.py); naive and
    # efficient labels cannot, and neither can soft > 0 under the same rollouts.
    check_soft_matches_hard(soft["rows"], hard_rows, labels_equal=cfg.labels.scheduler != "binary")
    masked = [dict(row, labels=[IGNORE_STEP if h == IGNORE_STEP else y for y, h in zip(row["labels"], b["labels"], strict=True)])
              for row, b in zip(soft["rows"], balanced, strict=True)]
    stage.write_table("sorm", masked)
    write_stepwise(stage.path(*STEPWISE_SORM), masked, soft=True)
    hard_stats = json.loads((stage.dir.parent / SORM / "labels_train.stats.json").read_text())
    counts = {"train_solutions": len(soft["rows"]), "train_stats": soft["stats"], "hard_train_stats": hard_stats}
    if cfg.data.task == "tiny":
        qmap = {q["id"]: q for q in questions(cfg, "train")}
        counts["oracle_auc_train"] = soft_label_auc(soft["rows"], qmap)
    return stage.finish(counts, inputs={"student": student, "sorm_labels": str(stage.dir.parent / SORM)})


def check_soft_matches_hard(soft: list[dict], hard: list[dict], labels_equal: bool = True) -> None:
    """The soft rows are the hard rows' solutions, in order; with ``labels_equal`` (the hard labels
    are the naive procedure's: labels.scheduler naive or efficient) ``soft > 0`` is also the hard
    label of every step, since soft labels come from the same seeded rollouts. A mismatch means the
    two stages did not label the same solutions with the same rollouts."""
    if len(soft) != len(hard):
        raise StageError(f"{SOFT}: {len(soft)} soft label rows but {SORM} has {len(hard)}: re-run both stages")
    for n, (s, h) in enumerate(zip(soft, hard, strict=True)):
        thresholded = [int(y > 0) for y in s["labels"]]
        if (s["question_id"], s["solution"]) != (h["question_id"], h["solution"]) or \
                (labels_equal and thresholded != list(h["labels"])):
            raise StageError(f"{SOFT}: row {n} (question {s['question_id']!r}) does not match {SORM}'s: soft labels "
                             f"{s['labels']} against hard {list(h['labels'])}; re-run both stages with one config")


def soft_label_auc(rows: list[dict], qmap: dict[str, dict]) -> dict:
    """How well the labels themselves rank steps against the exact oracle: the ROC AUC of the soft
    labels and of the hard ones (``soft > 0``) over every step (tiny world)."""
    from glore_ray.tasks.tiny_oracle import exact_step_labels
    from glore_ray.tasks.tiny_world import TinyProblem

    soft, exact = [], []
    for row in rows:
        soft += row["labels"]
        exact += exact_step_labels(TinyProblem.from_row(qmap[row["question_id"]]), row["solution"])
    return {"soft": auc(soft, exact), "hard": auc([float(y > 0) for y in soft], exact), "n_steps": len(exact)}


def label_split(cfg: Config, stage: Stage, student: str, split: str, samples: list[dict], soft: bool = False) -> dict:
    """Label ``samples`` with the configured scheduler (``soft``: the soft labeller); rows and every
    rollout go to Parquet.

    The scheduler runs inside the generator actors, a shard of questions per actor call
    (:class:`SormShardJob`): its waves then cost no Ray Data execution each. A shard holds whole
    questions, so prefixes shared by samples of a question are still verified once.
    """
    from glore_ray.rollout.sampler import run_shards

    job = SormShardJob(cfg.labels, cfg.rollout.temperature, cfg.rollout.top_p, cfg.run.seed, split, soft)
    started = time.time()
    run_shards(plan_label_shards(samples, cfg.labels.sorm_shard_solutions), stage, job, student, cfg.rollout)
    rows = stage.read_table(f"labels_{split}")
    stats = sum_stats(stage.read_table(f"stats_{split}"))
    stats["seconds"] = round(time.time() - started, 1)  # this invocation's (a resumed stage: its last part)
    stage.write_json(f"labels_{split}.stats.json", stats)
    # What the paper's procedure would cost: K rollouts from every non-final prefix.
    stats["naive_rollouts_equivalent"] = cfg.labels.sorm_k * sum(len(r["labels"]) - 1 for r in rows)
    return {"rows": rows, "stats": stats}


def plan_label_shards(samples: list[dict], max_solutions: int):
    """(shard index, payload) pairs: runs of whole questions, about ``max_solutions`` samples each,
    in the samples' order (so the label rows come back in input order)."""
    shards, current, first = [], [], 0
    for n, sample in enumerate(samples):
        starts_question = not current or current[-1]["question_id"] != sample["question_id"]
        if current and starts_question and len(current) >= max_solutions:
            shards.append((first, current))
            current, first = [], n
        current.append(sample)
    if current:
        shards.append((first, current))
    return [(i, json.dumps({"first_row": first, "samples": rows}, sort_keys=True, default=str))
            for i, (first, rows) in enumerate(shards)]


@dataclass(frozen=True)
class SormShardJob:
    """The SORM scheduler on one shard of solutions, verifying with the actor's own generator.

    A verifying rollout's seed comes from (question, prefix, sample index) alone, never from the
    batch it travels in, so the efficient and naive schedulers see the same rollouts (docs/architecture.md §5).
    """

    labels: object  # LabelConfig
    temperature: float
    top_p: float
    run_seed: int
    split: str
    soft: bool = False  # the soft labeller (every rollout; float labels) instead of labels.scheduler

    @property
    def tables(self) -> tuple[str, ...]:
        return (f"labels_{self.split}", f"rollouts_{self.split}", f"stats_{self.split}")

    def run(self, generator, payload: str) -> tuple[dict[str, list[dict]], int]:
        shard = json.loads(payload)
        label = soft_labels if self.soft else sorm_labels
        result = label(shard["samples"], self._verifier(generator), self.labels, first_row=shard["first_row"])
        tables = {f"labels_{self.split}": result.rows, f"rollouts_{self.split}": result.rollouts,
                  f"stats_{self.split}": [result.stats.as_dict()]}
        return tables, result.stats.tokens_generated

    def schema(self, table: str):
        if table.startswith("labels_"):
            return SOFT_LABEL_SCHEMA if self.soft else LABEL_SCHEMA
        return AUDIT_SCHEMA if table.startswith("rollouts_") else None  # stats: inferred (all ints)

    def _verifier(self, generator):
        from glore_ray.rollout.engine import RolloutRequest
        from glore_ray.rollout.sampler import generate_rows

        def verify(batch):
            requests = [RolloutRequest(v.question_id, v.prompt, prefix=v.prefix, prefix_index=0, answer=v.answer,
                                       seed_key=f"{v.seed_key}#{v.sample_index}") for v in batch]
            rows = generate_rows(generator, requests, self.labels.sorm_max_new_tokens, self.temperature, self.top_p,
                                 base_seed=self.run_seed)
            return [VerifyResult(r["text"], bool(r["correct"]), int(r["num_tokens"])) for r in rows]

        return verify


# Schemas given, not inferred from a shard's rows: a shard with no rollouts, or with no witness
# at all, must still write columns of the same types as every other shard.
LABEL_SCHEMA = pa.schema([
    ("question_id", pa.string()), ("question", pa.string()), ("prompt", pa.string()), ("solution", pa.string()), ("labels", pa.list_(pa.int64())),
    ("correct", pa.bool_()), ("raw_labels", pa.list_(pa.int64())), ("witnesses", pa.list_(pa.string())),
    ("rollouts_per_step", pa.list_(pa.int64())), ("prefix_keys", pa.list_(pa.string())),
])
SOFT_LABEL_SCHEMA = LABEL_SCHEMA.set(LABEL_SCHEMA.get_field_index("labels"), pa.field("labels", pa.list_(pa.float64())))
AUDIT_SCHEMA = pa.schema([
    ("question_id", pa.string()), ("solution_key", pa.string()), ("prefix_key", pa.string()),
    ("prefix_index", pa.int64()), ("prefix", pa.string()), ("sample_index", pa.int64()), ("text", pa.string()),
    ("correct", pa.bool_()), ("counted", pa.bool_()), ("consistency_rejected", pa.bool_()), ("num_tokens", pa.int64()),
])


def sum_stats(per_shard: list[dict]) -> dict:
    """The stage's SormStats from its shards' (shards hold disjoint questions: counts add up;
    waves run in parallel across shards: the most any shard needed)."""
    total = {}
    for stats in per_shard:
        for key, value in stats.items():
            total[key] = max(total.get(key, 0), value) if key == "waves" else total.get(key, 0) + value
    return total


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
    from glore_ray.tasks.tiny_oracle import exact_step_labels
    from glore_ray.tasks.tiny_world import TinyProblem

    labels, exact = [], []
    for row in rows:
        problem = TinyProblem.from_row(qmap[row["question_id"]])
        labels.append(row["labels"])
        exact.append(exact_step_labels(problem, row["solution"]))
    return label_agreement(labels, exact)
