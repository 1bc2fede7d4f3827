"""The GLoRe service with a vLLM student on vLLM's CPU build (issue 18), over real HTTP: the draft
it serves is the one HFGenerator writes for the same checkpoint."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import requests
from rollout_support import memorised_lm_dir, memorised_problems

from glore_ray.rollout.vllm_engine import vllm_available

pytestmark = [pytest.mark.vllm, pytest.mark.ray,
              pytest.mark.skipif(not vllm_available(), reason="needs vLLM: make vllm-env")]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ray"))  # serve_models: the Serve tests' models


def test_the_service_drafts_with_a_vllm_student(ray_cluster, tiny_tokenizer, tmp_path_factory):
    import serve_models
    from ray import cloudpickle, serve

    from glore_ray.config import RolloutConfig, load_config
    from glore_ray.rollout.engine import RolloutRequest
    from glore_ray.rollout.hf_engine import HFGenerator
    from glore_ray.serving.app import build_app
    from glore_ray.serving.deployments import load_text_generator

    cloudpickle.register_pickle_by_value(serve_models)
    path = memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem"), n_head=2)
    cfg = load_config(None, ["serve.cpus_per_replica=0.1", "serve.ingress_cpus=0.1", "serve.request_timeout_s=120",
                             "refine.max_new_tokens=64", "serve.app_name=glore_vllm"])
    student = functools.partial(load_text_generator, path, RolloutConfig(backend="vllm"))
    loaders = {"student": student, "orm": serve_models.ArithmeticScorer, "sorm": serve_models.ArithmeticScorer,
               "global_refiner": serve_models.ArithmeticFixer, "local_refiner": serve_models.ArithmeticFixer}
    problems = memorised_problems()
    hf = HFGenerator(path, batch_size=8)
    expected = [c.text for (c,) in hf.generate([RolloutRequest(p.id, f"Q: {p.question}\nA: ", greedy=True)
                                                for p in problems], 64)]
    with serve_models.http_serve() as url:
        serve.run(build_app(cfg, loaders), name=cfg.serve.app_name, route_prefix="/")
        try:
            for problem, text in zip(problems, expected):
                r = requests.post(f"{url}/v1/refine", json={"question": problem.question}, timeout=300)
                assert r.status_code == 200, r.text
                draft = r.json()["candidates"][0]
                assert draft["kind"] == "draft" and r.json()["draft_source"] == "student"
                assert draft["text"].strip() == text.strip() == problem.reference.strip()
        finally:
            serve.delete(cfg.serve.app_name)
