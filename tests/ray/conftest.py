"""The smoke run: the whole pipeline once on configs/smoke.yaml, shared by the e2e test modules."""

from pathlib import Path

import pytest

from glore_ray.config import load_config

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_run(ray_cluster, tmp_path_factory):
    """(config, pipeline summary, pipeline log lines) of one finished smoke pipeline run."""
    from glore_ray.stages.pipeline import run_pipeline

    cfg = load_config(SMOKE_CONFIG, [f"run.run_dir={tmp_path_factory.mktemp('smoke')}"])
    logs = []
    summary = run_pipeline(cfg, log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    return cfg, summary, logs
