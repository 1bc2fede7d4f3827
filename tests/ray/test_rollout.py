"""The Ray Data sampler on a local CPU cluster: every row exactly once, resumable, actor deaths survived."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch
from rollout_support import map_workers, memorised_lm_dir, memorised_problems, prompt_of, sample_killing_one_actor

from glore_ray.artifacts import Stage
from glore_ray.config import RolloutConfig
from glore_ray.rollout.engine import RolloutError, RolloutRequest
from glore_ray.rollout.hf_engine import HFGenerator
from glore_ray.rollout.sampler import generate_rows, sample_to_stage
from glore_ray.tasks.steps import split_steps

pytestmark = pytest.mark.ray

K = 4
CFG = RolloutConfig(num_actors=2, cpus_per_actor=1.0, shard_rows=3, batch_size=16, max_new_tokens=80,
                    temperature=1.0, device="cpu")


def _key(row):
    return row["question_id"], row["prefix_index"], row["sample_index"], row["round"]


def _mixed_requests():
    """K samples per question, continuations from every step prefix, greedy drafts: one table."""
    requests = []
    for p in memorised_problems():
        requests.append(RolloutRequest(p.id, prompt_of(p), n=K, answer=p.answer))
        steps = split_steps(p.reference)
        for i in range(len(steps) - 1):
            prefix = "".join(s + "\n" for s in steps[: i + 1])
            requests.append(RolloutRequest(p.id, prompt_of(p), prefix=prefix, prefix_index=i, n=2, answer=p.answer))
        requests.append(RolloutRequest(p.id, prompt_of(p), n=1, answer=p.answer, greedy=True, round=1))
    return requests


@pytest.fixture(scope="module")
def model_dir(tiny_tokenizer, tmp_path_factory):
    return memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem"))


@pytest.fixture(scope="module")
def direct_rows(model_dir):
    """The same requests sampled in this process, without Ray: the reference output."""
    torch.set_num_threads(1)  # as in the actors: same reduction order, same floats
    requests = _mixed_requests()
    rows = generate_rows(HFGenerator(model_dir, batch_size=16), requests, CFG.max_new_tokens, CFG.temperature,
                         CFG.top_p, base_seed=11)
    return {_key(r): r for r in rows}


@pytest.fixture(scope="module")
def first_run(ray_cluster, model_dir, tmp_path_factory):
    stage = Stage(tmp_path_factory.mktemp("run"), "orm_data", digest="d1")
    summary = sample_to_stage(_mixed_requests(), stage, "rollouts", model_dir, CFG, base_seed=11)
    return stage, summary


def test_every_sample_once_and_equal_to_the_direct_path(first_run, direct_rows):
    stage, summary = first_run
    requests = _mixed_requests()
    rows = stage.read_table("rollouts")
    assert len(rows) == sum(r.n for r in requests) == summary.rows == len(direct_rows)
    assert len({_key(r) for r in rows}) == len(rows)
    assert summary.shards_written == math.ceil(len(requests) / CFG.shard_rows) and summary.shards_skipped == 0
    assert summary.tokens == sum(r["num_tokens"] for r in rows) and summary.tokens_per_s > 0
    for row in rows:  # same seeds, same texts, whichever actor and batch sampled them
        assert row == direct_rows[_key(row)]


def test_k_samples_prefix_continuations_and_greedy_drafts(first_run):
    stage, _ = first_run
    rows = stage.read_table("rollouts")
    for p in memorised_problems():
        mine = [r for r in rows if r["question_id"] == p.id]
        sampled = [r for r in mine if r["prefix_index"] == -1 and r["round"] == 0]
        assert sorted(r["sample_index"] for r in sampled) == list(range(K))
        assert len({r["seed"] for r in sampled}) == K
        (draft,) = [r for r in mine if r["round"] == 1]
        assert draft["text"] == p.reference.rstrip("\n") + "\n" and draft["correct"] and draft["finished"]
        for r in (r for r in mine if r["prefix_index"] >= 0):
            assert r["prefix"] == "".join(s + "\n" for s in split_steps(p.reference)[: r["prefix_index"] + 1])
            assert r["correct"] == (r["prefix"] + r["text"]).rstrip().endswith(f"#### {p.answer}")


def test_resume_redoes_only_missing_shards_and_reproduces_them(ray_cluster, model_dir, first_run, tmp_path):
    first_stage, _ = first_run
    stage = Stage(tmp_path, "orm_data", digest="d1")
    table = stage.table_dir("rollouts")
    table.mkdir(parents=True)
    shards = sorted(first_stage.table_dir("rollouts").glob("part-*.parquet"))
    for shard in shards[1:-1]:  # an interrupted run: first and last shards missing, a torn temp file left
        (table / shard.name).write_bytes(shard.read_bytes())
    (table / ".tmp-999-part-00000.parquet").write_bytes(b"torn")
    summary = sample_to_stage(_mixed_requests(), stage, "rollouts", model_dir, CFG, base_seed=11)
    assert (summary.shards_written, summary.shards_skipped) == (2, len(shards) - 2)
    assert stage.read_table("rollouts") == first_stage.read_table("rollouts")
    again = sample_to_stage(_mixed_requests(), stage, "rollouts", model_dir, CFG, base_seed=11)
    assert (again.shards_written, again.rows) == (0, 0)
    with pytest.raises(RolloutError, match="other requests"):
        sample_to_stage(_mixed_requests()[:-1], stage, "rollouts", model_dir, CFG, base_seed=11)


def test_a_killed_actor_loses_and_duplicates_nothing(ray_cluster, model_dir, direct_rows, tmp_path):
    stage = Stage(tmp_path, "orm_data", digest="d1")
    cfg = dataclasses.replace(CFG, shard_rows=1)  # many small shards: the kill lands mid-run
    sample_killing_one_actor(stage, _mixed_requests(), model_dir, cfg, base_seed=11, timeout=480)
    rows = stage.read_table("rollouts")
    assert len(rows) == len(direct_rows) == len({_key(r) for r in rows})
    assert all(row == direct_rows[_key(row)] for row in rows)


def test_bad_input_fails_clearly_and_leaves_no_actors(ray_cluster, model_dir, tmp_path):
    stage = Stage(tmp_path, "orm_data", digest="d1")
    with pytest.raises(RolloutError, match="no rollout requests"):
        sample_to_stage([], stage, "empty", model_dir, CFG)
    with pytest.raises(RolloutError, match="does not exist"):
        sample_to_stage(_mixed_requests(), stage, "nomodel", str(tmp_path / "missing" / "model"), CFG)
    too_long = RolloutRequest("too-long", "Q: " + "1 " * 400 + "\nA: ")
    started = time.time()
    with pytest.raises(RolloutError, match=r"'too-long'.*context"):
        sample_to_stage([too_long], stage, "toolong", model_dir, CFG)
    assert time.time() - started < 120  # failed, not retried forever
    deadline = time.time() + 30
    while map_workers() and time.time() < deadline:
        time.sleep(0.5)
    left = map_workers()
    assert left == [], [(a.actor_id, a.pid, a.state, a.num_restarts) for a in left]
