"""Stage ``data``: question tables for train and test (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage, read_table, require_done
from glore_ray.config import Config
from glore_ray.tasks import load_questions

NAME = "data"


def run_data(cfg: Config, force: bool = False) -> dict:
    """Write ``questions_train`` and ``questions_test``; a finished stage is a no-op."""
    stage = Stage(cfg.run.run_dir, NAME, cfg.digest("data", "run.seed"), force=force)
    if stage.done:
        return stage.manifest
    counts, skipped = {}, {}
    for split in ("train", "test"):
        rows, bad = load_questions(cfg.data, split, seed=cfg.run.seed)
        stage.write_table(f"questions_{split}", rows)
        counts[split] = len(rows)
        skipped[split] = bad.reasons
    train_ids = {r["question"] for r in stage.read_table("questions_train")}
    overlap = sum(r["question"] in train_ids for r in stage.read_table("questions_test"))
    return stage.finish(counts, inputs={"task": cfg.data.task, "source": cfg.data.source},
                        extra={"skipped": skipped, "train_test_overlap": overlap})


def questions(cfg: Config, split: str) -> list[dict]:
    """The question rows of a finished data stage."""
    require_done(cfg.run.run_dir, NAME)
    return read_table(Path(cfg.run.run_dir) / NAME / f"questions_{split}")


def tiny_problems(cfg: Config, *splits: str) -> dict:
    """The tiny world's problems of a finished data stage, by question id (their graphs are what
    the exact oracle reads)."""
    from glore_ray.tasks.tiny_world import TinyProblem

    return {q["id"]: TinyProblem.from_row(q) for split in splits for q in questions(cfg, split)}
