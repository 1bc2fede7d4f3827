"""The service's replicas must fit the Ray they are deployed on; a local Ray never grows."""

from pathlib import Path

import pytest

from glore_ray.config import load_config
from glore_ray.serving.app import resource_demand
from glore_ray.serving.launch import check_fits

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def test_the_tiny_service_fits_the_tiny_worlds_cpus():
    cfg = load_config(TINY, [])
    demand = resource_demand(cfg.serve)
    assert demand == pytest.approx({"CPU": 5 * 0.3 + 0.1, "GPU": 0.0})
    assert demand["CPU"] <= cfg.run.num_cpus
    check_fits(cfg.serve, {"CPU": float(cfg.run.num_cpus)})


def test_demand_counts_replicas_and_per_model_overrides():
    serve = load_config(None, ["serve.cpus_per_replica=0.5", "serve.student.replicas=3", "serve.orm.cpus=2",
                               "serve.ingress_cpus=0.25"]).serve
    assert resource_demand(serve)["CPU"] == pytest.approx(3 * 0.5 + 2 + 0.5 * 3 + 0.25)


def test_a_service_that_cannot_fit_says_which_settings_to_change():
    serve = load_config(None, ["serve.cpus_per_replica=0.5"]).serve
    with pytest.raises(ValueError, match=r"need 2\.6 CPU \(this Ray has 2\).*serve\.cpus_per_replica"):
        check_fits(serve, {"CPU": 2.0})
    with pytest.raises(ValueError, match="GPU"):
        check_fits(load_config(None, ["serve.gpus_per_replica=1"]).serve, {"CPU": 64.0, "GPU": 1.0})
