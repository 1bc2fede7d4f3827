"""VLLMGenerator on a GPU: same API, same stop rule, seeds that make samples batch-independent."""

from __future__ import annotations

import pytest

from glore_ray.config import RolloutConfig
from glore_ray.rollout.engine import RolloutRequest, request_seeds
from glore_ray.rollout.vllm_engine import vllm_available

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(not vllm_available(), reason="needs vLLM (pip install 'glore-ray[gpu]')"),
]


@pytest.fixture(scope="module")
def vllm_gen(tiny_lm_dir):
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    return VLLMGenerator(str(tiny_lm_dir), RolloutConfig(backend="vllm", gpus_per_actor=1, gpu_memory_utilization=0.3))


def test_n_samples_seeded_and_batch_independent(vllm_gen, tiny_problems):
    target = RolloutRequest(tiny_problems[0].id, f"Q: {tiny_problems[0].question}\nA: ", n=3)
    others = [RolloutRequest(p.id, f"Q: {p.question}\nA: ", n=2) for p in tiny_problems[1:5]]
    alone = vllm_gen.generate([target], 24, 1.0, 1.0, base_seed=2)[0]
    mixed = vllm_gen.generate(others[:2] + [target] + others[2:], 24, 1.0, 1.0, base_seed=2)[2]
    assert [c.seed for c in alone] == request_seeds(target, 2)
    assert [c.text for c in alone] == [c.text for c in mixed]
    assert all(1 <= c.num_tokens <= 24 for c in alone)


def test_greedy_samples_agree(vllm_gen, tiny_problems):
    request = RolloutRequest(tiny_problems[0].id, f"Q: {tiny_problems[0].question}\nA: ", n=2, greedy=True)
    first, second = vllm_gen.generate([request], 16)[0]
    assert first.text == second.text
