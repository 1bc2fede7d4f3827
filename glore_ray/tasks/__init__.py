"""Tasks: pure Python question sources, the grader, steps and the tiny world (no Ray)."""

from __future__ import annotations

from glore_ray.tasks.records import DataError, Skipped

DEFAULT_SOURCES = {"gsm8k": "openai/gsm8k", "svamp": "ChilleD/SVAMP"}


def load_questions(data, split: str, seed: int = 0, skip_bad: bool = False) -> tuple[list[dict], Skipped]:
    """Question rows (docs/architecture.md §3) of ``split`` for a :class:`~glore_ray.config.DataConfig`."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    cap = data.n_train if split == "train" else data.n_test
    if data.task == "tiny":
        from glore_ray.tasks.tiny_world import generate_problems

        n = cap or (2000 if split == "train" else 500)
        try:
            problems = generate_problems(n, seed, split, data.tiny_world)
        except ValueError as err:  # a world too small for n: the job prints it as one line
            raise DataError(f"data.tiny_world: {err}") from None
        return [p.to_row() for p in problems], Skipped()
    source = data.source or DEFAULT_SOURCES[data.task]
    if data.task == "gsm8k":
        from glore_ray.tasks.gsm8k import load_gsm8k as load
    else:
        from glore_ray.tasks.svamp import load_svamp as load
    rows, skipped = load(source, split, skip_bad)
    return (rows[:cap] if cap else rows), skipped


__all__ = ["DataError", "Skipped", "load_questions"]
