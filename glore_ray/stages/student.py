"""Stage ``student``: SFT then Expert Iteration, with the paper's Table 5 metrics (3.1 step 1, App. B).

Layout under ``<run_dir>/student/``::

    base/                 the base model (tiny world: a tokenizer + random-init Llama; else a pointer)
    round_0/              SFT on D_0 (references; SVAMP: 1-shot bootstrapped samples)
    round_i/rollouts/     K samples per train question from round i-1's model
    round_i/dataset/      D_i = D_{i-1} ∪ dedup(correct samples)
    round_i/model/        the base model fine-tuned on D_i
    round_i/eval_*/       greedy and K-sample test rollouts; round_i/metrics.json
    rounds.json           the per-round table; final.json: the chosen student

A round whose metrics.json exists is done; an interrupted round resumes at its missing shards
(rollouts) or its last training checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from glore_ray.artifacts import Stage, read_table, require_done
from glore_ray.config import Config
from glore_ray.labeling.expert_iteration import converged, next_dataset, sft_rows
from glore_ray.metrics import maj_at_k, mean_pass_at_k
from glore_ray.stages.common import by_question, sample_table, save_tiny_init
from glore_ray.stages.data import questions, sampled_questions
from glore_ray.tasks.grading import extract_answer
from glore_ray.tasks.prompts import one_shot_prompt, student_prompt

NAME = "student"
# What the stage's artifacts depend on. "rollout": the EI and evaluation samples are drawn with its
# temperature, top_p and lengths (resource-only fields are dropped by Config.digest).
DIGEST = ("data", "model", "student", "training.student", "rollout", "run.seed")
PRETRAINED = ("pretrain", "training.pretrain")  # also, when the base is the pretrain stage's


def digest_sections(cfg: Config) -> tuple[str, ...]:
    """What the stage digests: a run without a pretrained base keeps the digest it always had."""
    return DIGEST + (PRETRAINED if cfg.pretrain.enabled else ())


def run_student(cfg: Config, force: bool = False) -> dict:
    stage = Stage(cfg.run.run_dir, NAME, cfg.digest(*digest_sections(cfg)), force)
    if stage.done:
        return stage.manifest
    train, test = questions(cfg, "train"), questions(cfg, "test")
    base = ensure_base_model(cfg, stage, train)
    d_prev = sft_rows(train, student_prompt) or bootstrap_rows(cfg, stage, base, train)
    d_prev += slipped_rows(cfg, train)
    history = [train_round(cfg, stage, 0, base, base, d_prev, test, {"dataset": len(d_prev)})]
    for r in range(1, cfg.student.max_rounds + 1):
        if converged([h["maj@1"] for h in history], cfg.student.tolerance):
            break
        pool = sampled_questions(train, cfg.student.ei_questions, cfg.run.seed, "ei")
        samples = ei_samples(cfg, stage, r, history[-1]["checkpoint"], pool)
        d_prev, counts = next_dataset(d_prev, samples, cfg.student.ei_dedup == "dataset")
        history.append(train_round(cfg, stage, r, base, history[-1]["checkpoint"], d_prev, test, counts))
    best = max(history, key=lambda h: (h["maj@1"], -h["round"]))
    stage.write_json("rounds.json", history)
    stage.write_json("final.json", {"round": best["round"], "checkpoint": best["checkpoint"]})
    print_rounds(history)
    return stage.finish({"rounds": len(history), "final_round": best["round"], "maj@1": best["maj@1"]},
                        inputs={"base": cfg.model.base}, extra={"history": history})


def ensure_base_model(cfg: Config, stage: Stage, train: list[dict]) -> str:
    """The base checkpoint every round fine-tunes from (paper: "again fine-tune the pre-trained
    model"). The tiny world's is the ``pretrain`` stage's base when ``pretrain.enabled``; else a
    tokenizer trained on the train text and a random-init Llama, saved once so every round starts
    from the same weights."""
    if cfg.model.base != "tiny":
        return cfg.model.base
    if cfg.pretrain.enabled:
        from glore_ray.stages.pretrain import base_checkpoint

        return base_checkpoint(cfg)
    path = stage.path("base")
    if (path / "config.json").exists():
        return str(path)
    texts = [student_prompt(q["question"]) + q["reference"] for q in train]
    return save_tiny_init(path, texts, cfg.model, cfg.run.seed)


def slipped_rows(cfg: Config, train: list[dict]) -> list[dict]:
    """Tiny world: ``student.slipped_rows`` x |train| rows whose prompt ends in a slipped step and
    whose target follows from it (:func:`~glore_ray.tasks.tiny_world.slipped_continuation`)."""
    if cfg.data.task != "tiny" or cfg.student.slipped_rows <= 0:
        return []
    import random

    from glore_ray.tasks.slipped import slipped_continuation
    from glore_ray.tasks.tiny_world import TinyProblem

    rng = random.Random(f"slipped-rows/{cfg.run.seed}")
    want, rows, tries = round(cfg.student.slipped_rows * len(train)), [], 0
    while len(rows) < want and tries < 20 * want:
        q = train[tries % len(train)]
        tries += 1
        made = slipped_continuation(TinyProblem.from_row(q), rng, cfg.data.tiny_world.max_value)
        if made is not None:
            rows.append({"question_id": q["id"], "prompt": student_prompt(q["question"]) + made[0], "target": made[1]})
    return rows


def bootstrap_rows(cfg: Config, stage: Stage, base: str, train: list[dict]) -> list[dict]:
    """D_0 without references (SVAMP): sample the base model with a 1-shot prompt and keep the
    correct, de-duplicated samples under the plain student prompt (paper 3.1 step 1)."""
    from glore_ray.rollout.engine import RolloutRequest

    requests = [RolloutRequest(q["id"], one_shot_prompt(q["question"]), n=cfg.student.k, answer=q["answer"])
                for q in train]
    rows = sample_table(cfg, stage, "round_0/bootstrap", base, requests, cfg.student.max_new_tokens)
    prompts = {q["id"]: student_prompt(q["question"]) for q in train}
    samples = [{**r, "prompt": prompts[r["question_id"]]} for r in rows]
    d0, _ = next_dataset([], samples)
    return d0


def ei_samples(cfg: Config, stage: Stage, r: int, model: str, train: list[dict]) -> list[dict]:
    from glore_ray.rollout.engine import RolloutRequest

    requests = [RolloutRequest(q["id"], student_prompt(q["question"]), n=cfg.student.k, answer=q["answer"], round=r)
                for q in train]
    rows = sample_table(cfg, stage, f"round_{r}/rollouts", model, requests, cfg.student.max_new_tokens)
    prompts = {q["id"]: student_prompt(q["question"]) for q in train}
    return [{**row, "prompt": prompts[row["question_id"]]} for row in rows]


def train_round(cfg: Config, stage: Stage, r: int, base: str, sampler_model: str, dataset: list[dict],
                test: list[dict], counts: dict) -> dict:
    """Fine-tune the base on D_r, then measure it; a round with metrics.json is reused."""
    metrics_path = stage.path(f"round_{r}", "metrics.json")
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    from dataclasses import replace

    from glore_ray.training.trainer import fine_tune

    t0 = time.time()
    stage.write_table(f"round_{r}/dataset", dataset)
    init, train_cfg = base, cfg.training.student
    if r > 0 and cfg.student.ei_init == "previous":
        init = sampler_model
    if r > 0 and cfg.student.ei_epochs is not None:
        train_cfg = replace(train_cfg, epochs=cfg.student.ei_epochs)
    result = fine_tune("lm", dataset, init, str(stage.path(f"round_{r}", "model")), train_cfg, seed=cfg.run.seed + r)
    metrics = evaluate_student(cfg, stage, f"round_{r}", result.checkpoint, test)
    row = {"round": r, "dataset": len(dataset), **counts, **metrics, "checkpoint": result.checkpoint,
           "train_loss": result.final_loss, "seconds": round(time.time() - t0, 1)}
    stage.write_json(f"round_{r}/metrics.json", row)
    return row


def evaluate_student(cfg: Config, stage: Stage, prefix: str, model: str, test: list[dict]) -> dict:
    """Table 5 on the test split: maj@1 (greedy), maj@K and pass@K over K samples."""
    from glore_ray.rollout.engine import EVAL_SAMPLES_ROUND, RolloutRequest

    k = cfg.student.eval_k
    greedy = sample_table(cfg, stage, f"{prefix}/eval_greedy", model,
                          [RolloutRequest(q["id"], student_prompt(q["question"]), answer=q["answer"], greedy=True)
                           for q in test], cfg.student.max_new_tokens)
    sampled = sample_table(cfg, stage, f"{prefix}/eval_samples", model,
                           [RolloutRequest(q["id"], student_prompt(q["question"]), n=k, answer=q["answer"], round=EVAL_SAMPLES_ROUND)
                            for q in test], cfg.student.max_new_tokens)
    groups = by_question(sampled)
    per_q = [sorted(groups[q["id"]], key=lambda s: s["sample_index"]) for q in test]
    return {
        "maj@1": sum(r["correct"] for r in greedy) / max(1, len(greedy)),
        f"maj@{k}": maj_at_k([[extract_answer(s["text"]) for s in ss] for ss in per_q], [q["answer"] for q in test], k),
        f"pass@{k}": mean_pass_at_k([[s["correct"] for s in ss] for ss in per_q], k),
    }


def print_rounds(history: list[dict]) -> None:
    keys = [k for k in history[0] if k.startswith(("maj@", "pass@"))]
    print(f"{'round':>5} {'|D_i|':>7} " + " ".join(f"{k:>8}" for k in keys) + f" {'seconds':>8}")
    for h in history:
        print(f"{h['round']:>5} {h['dataset']:>7} " + " ".join(f"{h[k]:>8.3f}" for k in keys) + f" {h['seconds']:>8}")


def rounds_table(run_dir) -> list[dict]:
    """The per-round table (Table 5 per round) of a finished student stage."""
    require_done(run_dir, NAME)
    return json.loads((Path(run_dir) / NAME / "rounds.json").read_text())


def final_round(run_dir) -> int:
    """The EI round the student stage chose as the final student."""
    require_done(run_dir, NAME)
    return json.loads((Path(run_dir) / NAME / "final.json").read_text())["round"]


def round_table(run_dir, r: int, table: str) -> list[dict] | None:
    """Table ``table`` of round ``r`` (``dataset``, ``eval_greedy``, ``eval_samples``, and for an
    EI round ``rollouts``); None when that round has no such table."""
    path = Path(run_dir) / NAME / f"round_{r}" / table
    return read_table(path) if path.exists() else None


__all__ = ["run_student", "evaluate_student", "rounds_table", "read_table"]
