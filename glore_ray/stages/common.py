"""Small pieces every stage shares: sampling into a table, where checkpoints live."""

from __future__ import annotations

import json
from pathlib import Path

from glore_ray.artifacts import Stage, StageError
from glore_ray.config import Config


def sample_table(cfg: Config, stage: Stage, table: str, model_path: str, requests: list, max_new_tokens: int,
                 seed_offset: int = 0) -> list[dict]:
    """Run ``requests`` through the Ray Data generator pool into ``stage/table`` (resumable:
    shards already written are skipped) and return the rollout rows."""
    from glore_ray.rollout.sampler import sample_to_stage

    if requests:
        summary = sample_to_stage(requests, stage, table, model_path, cfg.rollout, max_new_tokens,
                                  base_seed=cfg.run.seed + seed_offset)
        stage.write_json(f"{table}.summary.json", summary.__dict__ if hasattr(summary, "__dict__") else summary)
        return stage.read_table(table)
    return []


def student_checkpoint(cfg: Config) -> str:
    """The final student's checkpoint (the EI round the student stage chose)."""
    path = Path(cfg.run.run_dir) / "student" / "final.json"
    if not path.exists():
        raise StageError(f"{path.parent}: the student stage has not finished; run jobs/student.py first")
    return json.loads(path.read_text())["checkpoint"]


def by_question(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["question_id"], []).append(row)
    return out


def save_tiny_init(path: Path, texts: list[str], model_cfg, seed: int) -> str:
    """A tokenizer trained on ``texts`` (plus the refiners' prompt words) and a random-init tiny
    Llama, saved at ``path`` once: complete or absent, never half-written."""
    from glore_ray.decide.how import global_prompt
    from glore_ray.models.tiny import build_tiny_lm
    from glore_ray.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([*texts, global_prompt("", "")])  # the refiners' prompt words too
    model = build_tiny_lm(model_cfg, tokenizer, seed=seed)
    tmp = path.with_name(f".{path.name}-tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(path)
    return str(path)
