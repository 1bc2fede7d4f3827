"""Stages ``reward_models/<kind>`` and ``refiners/<kind>``: fine-tunes on the training layer.

Every model starts from the final student's checkpoint (paper 4: all downstream models come
from the same base; starting from the student gives the tiny world's small models its grasp of
the format). Reward models get a fresh scalar head (docs/architecture.md §3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from glore_ray.artifacts import Stage, hash_file, require_done
from glore_ray.config import Config
from glore_ray.stages.labels import orm_table, soft_table, sorm_table
from glore_ray.stages.refine_data import refine_table

# sorm_oracle: the SORM's rows with the tiny world's exact labels, an upper bound (docs/faithful-world.md).
# stepwise: a step-label table in the common layout from any path (labeling/stepwise.py), e.g. one
# made elsewhere, or sorm_labels/stepwise/sorm_train.parquet (which trains the same model as sorm).
# sorm_soft: the SORM's solutions with soft labels (stage sorm_soft_labels), masked as the SORM's were.
RM_KINDS = ("orm", "balanced_orm", "sorm", "contrastive_orm", "sorm_filtered", "sorm_oracle", "sorm_soft", "stepwise")
REFINER_KINDS = ("global", "local", "value")  # value: App. J, with refine.value_refinement on
HELD_OUT = 0.05  # share of questions held out to measure RM step accuracy while training


def _model_stage(cfg: Config, family: str, kinds: tuple[str, ...], kind: str, sections: tuple[str, ...],
                 force: bool, extra: tuple[str, ...] = ()) -> Stage:
    """The stage directory ``<family>/<kind>``, after checking ``kind``; ``extra`` digests join the
    config's (a user's data file: other data is another stage's output, not a resume)."""
    if kind not in kinds:
        raise ValueError(f"--kind must be one of {kinds}, got {kind!r}")
    digest = cfg.digest(*sections, "run.seed")
    if extra:
        digest = hashlib.sha256("/".join((digest, *extra)).encode()).hexdigest()[:16]
    return Stage(cfg.run.run_dir, f"{family}/{kind}", digest, force)


def _digest_files(path: str) -> str:
    """The content of a data file, or of a directory's .parquet files."""
    p = Path(path)
    if not p.exists():
        from glore_ray.tasks.records import DataError

        raise DataError(f"{p}: no such file or directory")
    h = hashlib.sha256()
    for f in sorted(p.glob("*.parquet")) if p.is_dir() else [p]:
        h.update(f.name.encode())
        hash_file(h, f)
    return h.hexdigest()


def run_reward_model(cfg: Config, kind: str, force: bool = False, data: str | None = None) -> dict:
    """Train reward model ``kind``; ``data`` is the stepwise table of kind ``stepwise`` (only)."""
    from glore_ray.stages.common import student_checkpoint

    if (kind == "stepwise") != (data is not None):
        from glore_ray.config import ConfigError

        raise ConfigError("--data (a stepwise table) goes with --kind stepwise, and only with it")
    extra = (_digest_files(data),) if data is not None else ()
    stage = _model_stage(cfg, "reward_models", RM_KINDS, kind, ("training.rm", "labels"), force, extra)
    if stage.done:
        return stage.manifest
    objective, rows, data_counts = rm_rows(cfg, kind, data)
    if not rows:
        raise ValueError(f"reward model {kind!r}: no training rows (did the labelling stages produce any?)")
    train, held_out = split_held_out(rows)
    result = _fine_tune(objective, train, student_checkpoint(cfg), stage, cfg.training.rm, held_out, cfg.run.seed)
    return stage.finish({"rows": len(train), "held_out": len(held_out), **data_counts,
                         "final_loss": result.final_loss,
                         "tokens_per_s": result.tokens_per_s, "padding_fraction": result.padding_fraction,
                         "truncated": result.truncated, "eval": result.eval},
                        extra={"checkpoint": result.checkpoint})


def rm_rows(cfg: Config, kind: str, data: str | None = None) -> tuple[str, list[dict], dict]:
    """(objective, training rows, counts of how the rows were made) of reward model ``kind``."""
    run = cfg.run.run_dir
    if kind == "stepwise":
        from glore_ray.labeling.stepwise import read_stepwise

        return "step_bce", read_stepwise(data), {"data": str(data)}
    if kind in ("orm", "balanced_orm"):
        return "step_bce", orm_table(run, kind), {}
    if kind == "contrastive_orm":
        from glore_ray.labeling.contrastive import contrastive_pairs

        samples = orm_table(run, "samples")
        prompts = {r["question_id"]: r["prompt"] for r in orm_table(run, "orm")}
        samples = [{**s, "prompt": prompts[s["question_id"]]} for s in samples if s["question_id"] in prompts]
        pairs = contrastive_pairs(samples, cfg.labels.orm_k, cfg.run.seed)
        return "pairwise", pairs, {"pairs": len(pairs), "pair_questions": len({p["question_id"] for p in pairs})}
    if kind == "sorm_oracle":
        return "step_bce", *oracle_control(cfg)
    if kind == "sorm_soft":
        return "step_bce", soft_table(run, "sorm"), {}
    rows = sorm_table(run, "sorm")
    if kind == "sorm_filtered":
        rows, report = self_filtered(cfg, rows)
        # Flat keys: the run report's stage table shows a manifest's scalar counts.
        return "step_bce", rows, {f"self_filter_{k}": v for k, v in report.as_dict().items()}
    return "step_bce", rows, {}


def oracle_control(cfg: Config) -> tuple[list[dict], dict]:
    """Issue 16's oracle control: the SORM's training rows relabelled by the exact oracle
    (:func:`oracle_rows`), so it differs from the SORM only in its labels."""
    if cfg.data.task != "tiny":
        raise ValueError(f"reward model 'sorm_oracle' needs the tiny world's exact step labels; "
                         f"data.task is {cfg.data.task!r}")
    from glore_ray.labeling.oracle import oracle_rows
    from glore_ray.stages.data import tiny_problems

    # labels_train: the rows the ``sorm`` table was balanced from, in its order (stages/labels.py);
    # re-balancing the exact labels with the same seed mirrors what the SORM trained on.
    rows = sorm_table(cfg.run.run_dir, "labels_train")
    problems = tiny_problems(cfg, "train")
    rows, counts = oracle_rows(rows, problems, seed=cfg.run.seed if cfg.labels.balance else None)
    if not any(label in (0, 1) for r in rows for label in r["labels"]):
        raise ValueError(f"reward model 'sorm_oracle': balancing left no label to train on: at every step index "
                         f"the exact labels of the SORM's {len(rows)} solutions are all one class (a student "
                         f"this weak writes no valid step); leave sorm_oracle out of pipeline.extra_reward_models")
    return rows, {f"oracle_{k}": v for k, v in counts.items()}  # flat: the report's stage table shows them


def self_filtered(cfg: Config, rows: list[dict]):
    """App. I: score the SORM training rows with the first SORM (``reward_models/sorm``, trained
    on these very rows) and drop every step label it disagrees with (:func:`self_filter`)."""
    from glore_ray.labeling.sorm import self_filter
    from glore_ray.rollout.scoring import score_steps

    run = Path(cfg.run.run_dir)
    require_done(run / "reward_models", "sorm")
    first = str(_checkpoint(run / "reward_models" / "sorm"))
    scores = score_steps(first, [r["prompt"] for r in rows], [r["solution"] for r in rows],
                         chunks=cfg.rollout.num_actors, num_cpus=cfg.rollout.cpus_per_actor,
                         num_gpus=cfg.rollout.gpus_per_actor)
    return self_filter(rows, scores)


def split_held_out(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split by question (a stable hash), so held-out questions are unseen in training."""
    def held(qid: str) -> bool:
        return int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT

    train = [r for r in rows if not held(r["question_id"])]
    held_out = [r for r in rows if held(r["question_id"])]
    return (train or rows), held_out


def run_refiner(cfg: Config, kind: str, force: bool = False) -> dict:
    from glore_ray.stages.common import student_checkpoint

    if kind == "value" and not cfg.refine.value_refinement:
        raise ValueError("refiners/value: set refine.value_refinement=true (refine_data then writes the App. J "
                         "value-refinement table this refiner trains on)")
    stage = _model_stage(cfg, "refiners", REFINER_KINDS, kind, ("training.refiner", "refine"), force)
    if stage.done:
        return stage.manifest
    rows = refine_table(cfg.run.run_dir, kind)
    if not rows:
        raise ValueError(f"refiner {kind!r}: refine_data/{kind} is empty")
    result = _fine_tune("lm", rows, student_checkpoint(cfg), stage, cfg.training.refiner, None, cfg.run.seed)
    return stage.finish({"rows": len(rows), "final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s,
                         "padding_fraction": result.padding_fraction, "truncated": result.truncated},
                        extra={"checkpoint": result.checkpoint})


def _fine_tune(objective, rows, init, stage: Stage, train_cfg, eval_rows, seed):
    from glore_ray.training.trainer import fine_tune

    return fine_tune(objective, rows, init, str(stage.path("model")), train_cfg, eval_rows=eval_rows, seed=seed,
                     reward_head=objective != "lm")


def _checkpoint(stage_dir: Path) -> Path:
    import json

    return Path(json.loads((stage_dir / "manifest.json").read_text())["checkpoint"])


def model_checkpoint(run_dir: str, stage: str) -> str:
    """The checkpoint of a finished model stage, e.g. ``reward_models/sorm``."""
    require_done(Path(run_dir) / Path(stage).parent, Path(stage).name)
    return str(_checkpoint(Path(run_dir) / stage))
