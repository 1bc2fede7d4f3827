"""Serve's throughput-optimized settings: defaults that never override what the user chose."""

from glore_ray.config import load_config
from glore_ray.serving import fast_path


def test_apply_sets_the_defaults_into_an_empty_environment():
    env = {}
    assert fast_path.apply(env) == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
    assert env == fast_path.ENV


def test_apply_keeps_a_value_the_user_set():
    env = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "PATH": "/bin"}
    assert fast_path.apply(env)["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "0"
    assert env["PATH"] == "/bin" and env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "0"


def test_the_cluster_file_starts_ray_with_the_same_settings():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "cluster.yaml").read_text()
    starts = [line for line in text.splitlines() if "ray start" in line]
    prefix = " ".join(f"{k}={v}" for k, v in fast_path.ENV.items())
    assert starts and all(prefix in line for line in starts)


def test_the_service_config_can_turn_it_off():
    assert load_config(None, []).serve.throughput_optimized is True
    assert load_config(None, ["serve.throughput_optimized=false"]).serve.throughput_optimized is False
