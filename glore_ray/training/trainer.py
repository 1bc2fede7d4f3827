"""``fine_tune``: the one training entry point every stage calls (docs/architecture.md §6).

    result = fine_tune("step_bce", rows, init_path=student_dir, out_dir=run/"sorm", train_cfg=cfg.training.rm)

It validates the rows on the driver (bad input fails before any worker starts), runs the Ray
Train loop of ``loop.py`` with ``train_cfg.num_workers`` workers on the already-initialised Ray,
then copies the final HF export into ``out_dir`` (so ``from_pretrained(out_dir)`` works) and
writes ``train_done.json`` last. Calling again with the same ``out_dir`` returns the finished
model without training, or resumes an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from glore_ray.config import TrainConfig
from glore_ray.training import ray_api
from glore_ray.training.data import OBJECTIVES, OPTIONAL_KEYS, REQUIRED_KEYS, validate_rows
from glore_ray.training.loop import HF_DIR, STATE_FILE, train_loop
from glore_ray.training.losses import total_optimizer_steps

DONE_FILE = "train_done.json"


@dataclass
class TrainResult:
    checkpoint: str  # final HF directory (model + tokenizer)
    history: list[dict] = field(default_factory=list)  # one metrics dict per optimizer step
    final_loss: float = float("nan")  # mean training loss of the last step (all workers)
    tokens_per_s: float = 0.0  # non-pad training tokens per second, all workers, excluding start-up
    padding_fraction: float = 0.0  # pad tokens / all tokens in the micro-batches trained on
    truncated: int = 0  # rows cut at max_len (or dropped: nothing left to learn)
    eval: dict = field(default_factory=dict)  # held-out eval_loss / eval_accuracy at the end
    steps: int = 0  # optimizer steps
    resumed: int = 0  # times the run restarted from a checkpoint (killed worker or interrupted driver)


def grad_accum_steps(cfg: TrainConfig) -> int:
    """Micro-batches per optimizer step per worker; the effective global batch is
    micro_batch * this * num_workers (rounded up from batch_size).

    >>> grad_accum_steps(TrainConfig(batch_size=128, micro_batch=8, num_workers=2))
    8
    """
    return max(1, math.ceil(cfg.batch_size / (cfg.micro_batch * cfg.num_workers)))


def _dataset_and_count(rows, objective: str):
    if isinstance(rows, (str, Path)):
        if not Path(rows).exists():
            raise ValueError(f"{rows}: no such Parquet directory")
        dataset = ray_api.dataset_from(rows)
        missing = [k for k in REQUIRED_KEYS[objective] if k not in dataset.schema().names]
        if missing:
            raise ValueError(f"{rows}: Parquet rows lack column(s) {missing} needed by objective {objective!r}")
        # One pass on the driver: a bad row fails here with its index, not deep inside a worker.
        count = validate_rows(dataset.iter_rows(), objective, source=str(rows))
        read = [*REQUIRED_KEYS[objective], *(k for k in OPTIONAL_KEYS[objective] if k in dataset.schema().names)]
        return dataset.select_columns(read), count
    rows = list(rows)
    count = validate_rows(rows, objective)
    # Only the columns the objective reads go to the workers: a model must not depend on a row's
    # other fields, and it did (Ray Data sized its blocks, and so the workers' shards, by them).
    read = [*REQUIRED_KEYS[objective], *(k for k in OPTIONAL_KEYS[objective] if any(k in r for r in rows))]
    return ray_api.dataset_from([{k: r.get(k) for k in read} for r in rows]), count


def latest_checkpoint_dir(storage: Path) -> str | None:
    """The checkpoint under ``storage`` with the most steps (its state file is written by rank 0
    after the weights), or None."""
    found = []
    for state_file in storage.glob(f"*/checkpoint_*/{STATE_FILE}"):
        try:
            found.append((json.loads(state_file.read_text())["step"], str(state_file.parent)))
        except (ValueError, KeyError):
            continue  # a half-copied checkpoint of a killed driver
    return max(found)[1] if found else None


def _result_from(out_dir: Path, summary: dict) -> TrainResult:
    history_file = out_dir / "metrics.jsonl"
    history = [json.loads(ln) for ln in history_file.read_text().splitlines() if ln] if history_file.exists() else []
    return TrainResult(checkpoint=str(out_dir), history=history, **summary)


def fine_tune(objective: str, rows, init_path: str, out_dir: str, train_cfg: TrainConfig,
              eval_rows: list[dict] | None = None, seed: int = 0, reward_head: bool | None = None,
              _fail_at_step: int | None = None) -> TrainResult:
    """Train ``init_path`` on ``rows`` (a list of dicts or a Parquet directory) with ``objective``
    (lm | step_bce | pairwise); the model lands in ``out_dir`` in HF format.

    ``reward_head`` (default: True for step_bce/pairwise) trains a RewardModel: a fresh scalar head
    on a causal-LM backbone, or the same RM again if ``init_path`` already is one.
    ``_fail_at_step`` kills rank 0 once at that step (tests of resume only).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    out = Path(out_dir)
    if (out / DONE_FILE).exists():
        return _result_from(out, json.loads((out / DONE_FILE).read_text()))
    dataset, count = _dataset_and_count(rows, objective)
    if count < train_cfg.num_workers:
        raise ValueError(f"{count} rows cannot be sharded over {train_cfg.num_workers} workers")
    if eval_rows:
        validate_rows(eval_rows, objective, source="eval_rows")
    out.mkdir(parents=True, exist_ok=True)
    steps = total_optimizer_steps(train_cfg.epochs, count, train_cfg.batch_size)
    loop_config = {
        "objective": objective, "init_path": str(init_path), "out_dir": str(out.resolve()),
        "train_cfg": dataclasses.asdict(train_cfg), "total_steps": steps, "grad_accum": grad_accum_steps(train_cfg),
        "seed": seed, "reward_head": objective != "lm" if reward_head is None else reward_head,
        "eval_rows": list(eval_rows or []), "fail_at_step": _fail_at_step,
        "fail_marker": str(out.resolve() / "killed_once.marker"),
        "resume_from": latest_checkpoint_dir(out / "ray"),  # an interrupted earlier call's last checkpoint
    }
    checkpoint = Path(ray_api.run_trainer(train_loop, loop_config, train_cfg, dataset, str(out / "ray"), "train",
                                          train_cfg.max_failures))
    for item in (checkpoint / HF_DIR).iterdir():
        shutil.copy2(item, out / item.name)
    state = json.loads((checkpoint / STATE_FILE).read_text())
    summary = {**state["summary"], "steps": state["step"]}
    (out / DONE_FILE).write_text(json.dumps(summary, indent=1))  # written last: the stage's "done" marker
    return _result_from(out, summary)
