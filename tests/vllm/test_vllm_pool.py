"""The Ray Data pool of vLLM actors on vLLM's CPU build (issue 18): every sample exactly once and
equal to VLLMGenerator called directly, also when an actor is killed mid-run."""

from __future__ import annotations

import dataclasses

import pytest
from rollout_support import memorised_lm_dir, memorised_problems, prompt_of, sample_killing_one_actor

from glore_ray.artifacts import Stage
from glore_ray.config import RolloutConfig
from glore_ray.rollout.engine import RolloutRequest
from glore_ray.rollout.sampler import generate_rows
from glore_ray.rollout.vllm_engine import vllm_available
from glore_ray.tasks.steps import split_steps

pytestmark = [pytest.mark.vllm, pytest.mark.ray,
              pytest.mark.skipif(not vllm_available(), reason="needs vLLM: make vllm-env")]

CFG = RolloutConfig(backend="vllm", num_actors=2, cpus_per_actor=1.0, shard_rows=2, batch_size=16, max_new_tokens=80,
                    temperature=1.0, max_attempts=3)


def _key(row):
    return row["question_id"], row["prefix_index"], row["sample_index"], row["round"]


def _requests():
    out = []
    for p in memorised_problems():
        out.append(RolloutRequest(p.id, prompt_of(p), n=4, answer=p.answer))
        steps = split_steps(p.reference)
        out += [RolloutRequest(p.id, prompt_of(p), prefix="".join(s + "\n" for s in steps[: i + 1]), prefix_index=i,
                               n=2, answer=p.answer) for i in range(len(steps) - 1)]
        out.append(RolloutRequest(p.id, prompt_of(p), greedy=True, answer=p.answer, round=1))
    return out


@pytest.fixture(scope="module")
def model_dir(tiny_tokenizer, tmp_path_factory):
    return memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem"), n_head=2)


@pytest.fixture(scope="module")
def direct_rows(model_dir):
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    generator = VLLMGenerator(model_dir, CFG)
    rows = generate_rows(generator, _requests(), CFG.max_new_tokens, CFG.temperature, CFG.top_p, base_seed=11)
    del generator  # its engine process ends with it: the pool's actors get the CPUs
    import gc

    gc.collect()
    return {_key(r): r for r in rows}


def test_a_pool_of_vllm_actors_writes_every_sample_once_even_when_one_is_killed(ray_cluster, model_dir, direct_rows,
                                                                                 tmp_path):
    stage = Stage(tmp_path, "orm_data", digest="d1")
    cfg = dataclasses.replace(CFG, shard_rows=1)  # many small shards: the kill lands mid-run
    requests = _requests()
    sample_killing_one_actor(stage, requests, model_dir, cfg, base_seed=11, timeout=600)
    rows = stage.read_table("rollouts")
    assert len(rows) == len(direct_rows) == len({_key(r) for r in rows}) == sum(r.n for r in requests)
    assert all(row == direct_rows[_key(row)] for row in rows)  # same seeds, same texts, any actor
