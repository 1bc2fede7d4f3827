"""The Ray Data sampler: rollout requests through a pool of generator actors into Parquet shards.

Every sampling stage calls :func:`sample_to_stage` (docs/architecture.md §5). Requests are cut into shards of
``rollout.shard_rows`` requests in their given order; each shard goes to one generator actor
(``ray.data.ActorPoolStrategy``), which samples it and writes it atomically under
``<run_dir>/<stage>/<table>/part-NNNNN.parquet``. Only per-shard counts travel back, so the driver
never holds the rollouts. A shard on disk is complete, so a re-run samples only the missing
shards; an actor that dies mid-shard is restarted by Ray Data and its shard redone, and the
driver makes up to ``rollout.max_attempts`` passes over whatever is still missing. Samples are
seeded by identity (engine.rollout_seed), so a redone shard holds exactly the rows it would have.

Work that samples in rounds (the SORM scheduler's waves) runs whole inside the actors as a
:class:`ShardJob` through :func:`run_shards`: one Ray Data execution for the stage instead of one
per round, since each execution pays for starting its actors (process, imports, model load).

Ray Data is used only in this module.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from glore_ray.rollout.backends import load_generator
from glore_ray.rollout.engine import Generator, RolloutError, RolloutRequest
from glore_ray.tasks.grading import is_correct

log = logging.getLogger(__name__)

ROLLOUT_SCHEMA = pa.schema([
    ("question_id", pa.string()),
    ("prefix_index", pa.int64()),  # -1: sampled from the question; i: continued after step i
    ("sample_index", pa.int64()),
    ("round", pa.int64()),
    ("prefix", pa.string()),
    ("text", pa.string()),  # the generated continuation only
    ("num_tokens", pa.int64()),
    ("finished", pa.bool_()),  # stopped at the answer line's newline or EOS
    ("correct", pa.bool_()),  # the grader's verdict on prefix + text
    ("seed", pa.int64()),
])


@dataclass(frozen=True)
class RolloutSummary:
    rows: int  # rollouts written by this call (skipped shards not counted)
    tokens: int
    seconds: float
    tokens_per_s: float
    shards_written: int
    shards_skipped: int  # already on disk from an earlier run
    actor_seconds: float = 0.0  # summed in-actor sampling time of the written shards (no start-up, no queueing)

    @property
    def rollouts_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Shared by the direct path and the actors


def rollout_rows(request: RolloutRequest, completions) -> list[dict]:
    """The output rows of one request (schema: ROLLOUT_SCHEMA)."""
    return [
        {
            "question_id": request.question_id, "prefix_index": request.prefix_index,
            "sample_index": c.sample_index, "round": request.round, "prefix": request.prefix,
            "text": c.text, "num_tokens": c.num_tokens, "finished": c.finished,
            "correct": bool(request.answer) and is_correct(request.prefix + c.text, request.answer),
            "seed": c.seed,
        }
        for c in completions
    ]


def generate_rows(generator: Generator, requests: Sequence[RolloutRequest], max_new_tokens: int,
                  temperature: float = 1.0, top_p: float = 1.0, base_seed: int = 0) -> list[dict]:
    """Sample ``requests`` in this process and return one row per sample, in request order."""
    if not requests:
        return []
    completions = generator.generate(list(requests), max_new_tokens, temperature, top_p, base_seed)
    return [row for request, done in zip(requests, completions) for row in rollout_rows(request, done)]


def encode_requests(requests: Sequence[RolloutRequest]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in requests], sort_keys=True)


def decode_requests(payload: str) -> list[RolloutRequest]:
    return [RolloutRequest(**item) for item in json.loads(payload)]


def plan_shards(requests: Iterable[RolloutRequest], shard_rows: int) -> Iterator[tuple[int, str]]:
    """(shard index, encoded requests) in order: shard i holds requests [i*shard_rows, (i+1)*shard_rows)."""
    chunk: list[RolloutRequest] = []
    index = 0
    for request in requests:
        if not isinstance(request, RolloutRequest):
            raise RolloutError(f"expected RolloutRequest, got {type(request).__name__}: {request!r:.80}")
        chunk.append(request)
        if len(chunk) == shard_rows:
            yield index, encode_requests(chunk)
            chunk, index = [], index + 1
    if chunk:
        yield index, encode_requests(chunk)


# --------------------------------------------------------------------------------------------
# Shard jobs: what an actor does with one shard


class ShardJob(Protocol):
    """One shard's work on an actor's generator. ``tables[0]`` is the shard's completion mark: it
    is written last, so a shard counts as done only when every table of it is on disk."""

    tables: tuple[str, ...]

    def run(self, generator: Generator, payload: str) -> tuple[dict[str, list[dict]], int]:
        """(rows per table, tokens generated) for the shard ``payload``."""

    def schema(self, table: str) -> pa.Schema | None:
        """The table's Arrow schema (None: inferred from the rows)."""


@dataclass(frozen=True)
class SampleJob:
    """Sample a shard of encoded :class:`RolloutRequest` s into one rollout table."""

    table: str
    max_new_tokens: int
    temperature: float
    top_p: float
    base_seed: int

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table,)

    def run(self, generator: Generator, payload: str) -> tuple[dict[str, list[dict]], int]:
        rows = generate_rows(generator, decode_requests(payload), self.max_new_tokens, self.temperature,
                             self.top_p, self.base_seed)
        return {self.table: rows}, sum(r["num_tokens"] for r in rows)

    def schema(self, table: str) -> pa.Schema | None:
        return ROLLOUT_SCHEMA


# --------------------------------------------------------------------------------------------
# The actor


class _ShardWorker:
    """A generator actor: loads the backend once, then runs a job on whole shards and writes them."""

    def __init__(self, model_path, rollout_cfg, run_dir, stage_name, digest, job: ShardJob):
        import torch

        from glore_ray.artifacts import Stage

        if rollout_cfg.gpus_per_actor == 0:
            torch.set_num_threads(max(1, int(rollout_cfg.cpus_per_actor)))  # no oversubscription on CPU
        self.generator = load_generator(model_path, rollout_cfg)
        self.stage = Stage(run_dir, stage_name, digest)
        self.job = job

    def __call__(self, batch: dict) -> dict:
        stats = {"shard": [], "rows": [], "tokens": [], "seconds": [], "error": []}
        for shard, payload in zip(batch["shard"], batch["requests"]):
            t0 = time.perf_counter()
            try:
                outputs, tokens = self.job.run(self.generator, str(payload))
            except RolloutError as err:
                # Bad input is reported as data, not raised: a failed Ray Data execution keeps its
                # actors alive in a reference cycle, while a clean early stop releases them.
                outputs, tokens, error = {}, 0, str(err)
            else:
                for table in reversed(self.job.tables):  # the completion mark, tables[0], last
                    self.stage.write_shard(table, int(shard), outputs[table], schema=self.job.schema(table))
                error = ""
            stats["shard"].append(int(shard))
            stats["rows"].append(len(outputs.get(self.job.tables[0], [])))
            stats["tokens"].append(tokens)
            stats["seconds"].append(time.perf_counter() - t0)
            stats["error"].append(error)
        return stats


# --------------------------------------------------------------------------------------------
# The driver


def sample_to_stage(requests: Iterable[RolloutRequest], stage, table: str, model_path: str, rollout_cfg,
                    max_new_tokens: int | None = None, base_seed: int = 0) -> RolloutSummary:
    """Sample every request into ``stage``'s ``table`` (resumable, exactly once per row).

    Requests must come in the same order on a re-run (shards are defined by position); a re-run
    with other requests is refused rather than mixed (the plan's digest is kept beside the table).
    """
    max_new_tokens = max_new_tokens or rollout_cfg.max_new_tokens
    if max_new_tokens < 1:
        raise RolloutError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    job = SampleJob(table, max_new_tokens, rollout_cfg.temperature, rollout_cfg.top_p, base_seed)
    return run_shards(plan_shards(requests, rollout_cfg.shard_rows), stage, job, model_path, rollout_cfg)


def run_shards(plan: Iterable[tuple[int, str]], stage, job: ShardJob, model_path: str,
               rollout_cfg) -> RolloutSummary:
    """Run ``job`` on every shard of ``plan`` ((index, payload) pairs) through the generator
    actor pool; shards already on disk are skipped, so a re-run after an interruption does only
    the missing ones (and each shard is written exactly once)."""
    _check_loadable(model_path, rollout_cfg)
    plan = list(plan)
    table = job.tables[0]
    if not plan:
        raise RolloutError(f"{stage.dir}/{table}: no rollout requests to sample")
    _check_plan(stage, table, plan)
    skipped = sum(stage.has_shard(table, i) for i, _ in plan)
    t0 = time.perf_counter()
    rows = tokens = written = 0
    busy = 0.0
    bad_input = None
    for attempt in range(1, rollout_cfg.max_attempts + 1):
        pending = [(i, p) for i, p in plan if not stage.has_shard(table, i)]
        if not pending:
            break
        try:
            for stats in _run_pool(pending, stage, job, model_path, rollout_cfg):
                if stats["error"]:
                    bad_input = stats["error"]
                    break
                rows, tokens, written = rows + stats["rows"], tokens + stats["tokens"], written + 1
                busy += stats["seconds"]
                _log_progress(written + skipped, len(plan), rows, tokens, time.perf_counter() - t0)
        except Exception as err:  # noqa: BLE001 - sorted below: bad input re-raised, lost actors retried
            bad_input = _rollout_error(err)
            if bad_input is None and (_is_user_error(err) or attempt == rollout_cfg.max_attempts):
                raise  # a bug in the UDF fails the same way on every pass
            if bad_input is None:
                log.warning("rollout pass %d failed (%s); re-running the missing shards", attempt, err)
        # A failed Ray Data execution sits in a reference cycle that holds its actors (and their
        # CPUs/GPUs) until collected: free them now, not at some later GC.
        gc.collect()
        if bad_input is not None:
            raise RolloutError(f"{stage.dir}/{table}: {bad_input}")  # outside except: no traceback pins them
    missing = [i for i, _ in plan if not stage.has_shard(table, i)]
    if missing:
        raise RolloutError(f"{stage.dir}/{table}: shards {missing[:10]} still missing after "
                           f"{rollout_cfg.max_attempts} passes")
    seconds = time.perf_counter() - t0
    summary = RolloutSummary(rows, tokens, round(seconds, 3), tokens / seconds if seconds > 0 else 0.0,
                             written, skipped, round(busy, 3))
    log.info("rollouts %s/%s: %s", stage.name, table, summary)
    return summary


def _run_pool(pending, stage, job: ShardJob, model_path, rollout_cfg) -> Iterator[dict]:
    """Stream the pending shards through the actor pool; yield each finished shard's counts."""
    import ray

    ds = ray.data.from_items([{"shard": i, "requests": p} for i, p in pending], override_num_blocks=len(pending))
    resources = {"num_cpus": rollout_cfg.cpus_per_actor}
    if rollout_cfg.gpus_per_actor:
        resources["num_gpus"] = rollout_cfg.gpus_per_actor * rollout_cfg.tensor_parallel
    ds = ds.map_batches(
        _ShardWorker,
        fn_constructor_kwargs=dict(model_path=str(model_path), rollout_cfg=rollout_cfg, run_dir=str(stage.run_dir),
                                   stage_name=stage.name, digest=stage.digest, job=job),
        batch_size=1,  # one shard per call: a shard is the unit of work, of writing and of resume
        compute=ray.data.ActorPoolStrategy(size=min(rollout_cfg.num_actors, len(pending))),
        **resources,
    )
    rows = iter(ds.iter_rows())
    try:
        for row in rows:
            yield {"shard": int(row["shard"]), "rows": int(row["rows"]), "tokens": int(row["tokens"]),
                   "seconds": float(row["seconds"]), "error": str(row["error"])}
    finally:
        if hasattr(rows, "close"):
            rows.close()  # an early stop (bad input) shuts the execution and its actors down now


def _check_loadable(model_path, rollout_cfg) -> None:
    """Fail on the driver, before any actor starts, when the checkpoint cannot be read."""
    if rollout_cfg.backend != "hf":
        return
    from transformers import AutoConfig

    from glore_ray.rollout.engine import check_model_path

    try:
        AutoConfig.from_pretrained(check_model_path(model_path))
    except (OSError, ValueError) as err:
        raise RolloutError(f"{model_path}: cannot load the model config: {err}") from None


def _check_plan(stage, table: str, plan: list[tuple[int, str]]) -> None:
    digest = hashlib.sha256("\n".join(p for _, p in plan).encode()).hexdigest()[:16]
    path = stage.path(f"{table}.plan.json")
    if path.exists():
        old = json.loads(path.read_text())
        if old["digest"] != digest:
            raise RolloutError(f"{stage.dir}/{table}: holds shards of other requests (plan {old['digest']} != "
                               f"{digest}); sample into a new run_dir or stage")
        return
    stage.write_json(path.name, {"digest": digest, "shards": len(plan)})


def _rollout_error(err: BaseException) -> str | None:
    """The bad-input message behind a Ray Data failure, if that is what it was.

    Ray Data re-raises a UDF's exception as a ``UserCodeException`` that keeps only the traceback
    text, so the RolloutError is found by its name there. Such an error would fail again on every
    pass (sampling is deterministic), so the caller raises it instead of retrying.
    """
    from ray.exceptions import UserCodeException

    if isinstance(err, RolloutError):
        return str(err)
    if not isinstance(err, UserCodeException):
        return None
    found = re.findall(r"RolloutError: (.+)", str(err))
    return found[-1] if found else None


def _is_user_error(err: BaseException) -> bool:
    from ray.exceptions import UserCodeException

    return isinstance(err, UserCodeException)


def _log_progress(done: int, total: int, rows: int, tokens: int, seconds: float) -> None:
    rate = tokens / seconds if seconds > 0 else 0.0
    log.info("rollout shards %d/%d, %d rows, %d tokens, %.0f tok/s", done, total, rows, tokens, rate)
