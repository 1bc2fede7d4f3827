"""Shared fixtures: the real data in ../shared/data, one local Ray cluster, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glore_ray.serving import fast_path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GLORE_SHARED_DATA", REPO.parent / "shared" / "data"))

# Tests never reach a network: the hub stays offline, and torch stays on a few threads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# The tests' Ray runs Serve the way jobs/serve.py does (throughput-optimized), set before Ray starts.
fast_path.apply()


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path} (set GLORE_SHARED_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole session (ray.init costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False,
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    # Left running on purpose: later test modules reuse it; pytest's exit tears it down.


@pytest.fixture(scope="session")
def tiny_problems():
    from glore_ray.tasks.tiny_world import generate_problems

    return generate_problems(300, seed=0, split="train")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_problems):
    from glore_ray.models.tokenizer import train_tokenizer

    return train_tokenizer([f"Q: {p.question}\nA: {p.reference}" for p in tiny_problems], vocab_size=384)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tiny_tokenizer):
    """A random-init tiny Llama saved in HF format (tokenizer included)."""
    from glore_ray.config import ModelConfig
    from glore_ray.models.tiny import build_tiny_lm

    path = tmp_path_factory.mktemp("tiny_lm")
    model = build_tiny_lm(ModelConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, max_len=256), tiny_tokenizer)
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


# The smoke run: the whole pipeline once on configs/smoke.yaml, shared by the e2e test modules.
SMOKE_CONFIG = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_run(ray_cluster, tmp_path_factory):
    """(config, pipeline summary, pipeline log lines) of one finished smoke pipeline run."""
    from glore_ray.config import load_config
    from glore_ray.stages.pipeline import run_pipeline

    cfg = load_config(SMOKE_CONFIG, [f"run.run_dir={tmp_path_factory.mktemp('smoke')}"])
    logs = []
    summary = run_pipeline(cfg, log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    return cfg, summary, logs
