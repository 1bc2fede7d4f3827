"""Stage ``data``: question tables for train and test (docs/architecture.md §2)."""

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


def sampled_questions(rows: list[dict], n: int | None, seed: int, purpose: str) -> list[dict]:
    """``n`` of the question ``rows``, a seeded uniform choice kept in their original order (all
    of them when ``n`` is None or not smaller): the questions a sampling stage draws from.

    >>> rows = [{"id": str(i)} for i in range(10)]
    >>> [r["id"] for r in sampled_questions(rows, 3, seed=0, purpose="ei")] == [r["id"] for r in
    ...     sampled_questions(rows, 3, seed=0, purpose="ei")]
    True
    >>> len(sampled_questions(rows, None, 0, "ei")), len(sampled_questions(rows, 4, 0, "orm"))
    (10, 4)
    """
    if n is None or n >= len(rows):
        return list(rows)
    import random

    keep = set(random.Random(f"{purpose}/{seed}").sample(range(len(rows)), n))
    return [row for i, row in enumerate(rows) if i in keep]


def tiny_problems(cfg: Config, *splits: str) -> dict:
    """The tiny world's problems of a finished data stage, by question id (their graphs are what
    the exact oracle reads)."""
    from glore_ray.tasks.tiny_world import TinyProblem

    return {q["id"]: TinyProblem.from_row(q) for split in splits for q in questions(cfg, split)}
