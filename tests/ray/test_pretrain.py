"""Stage ``pretrain`` on a real Ray cluster: the tiny base is trained once, shared by every student
seed, probed per step kind, and a changed base config is refused, never mixed in."""

import json
from pathlib import Path

import pytest

from glore_ray.artifacts import StageError
from glore_ray.config import load_config

WORLD = ['data.tiny_world.ops=["+","-","*"]', "data.tiny_world.start_range=[2,9]", "data.tiny_world.add_range=[1,9]",
         "data.tiny_world.mul_range=[2,3]", "data.tiny_world.max_value=60", "data.tiny_world.p_product=0.5",
         "data.tiny_world.product_k_range=[3,5]", "data.tiny_world.product_m_range=[6,12]",
         "data.tiny_world.min_ops=2", "data.tiny_world.max_ops=3"]
BASE = ["pretrain.enabled=true", "pretrain.rows=96", "pretrain.known_share=0.5", "pretrain.rare_sightings=1",
        "training.pretrain.epochs=1", "training.pretrain.batch_size=16", "training.pretrain.micro_batch=16",
        "training.pretrain.num_workers=1", "training.pretrain.checkpoint_every=0"]


def _cfg(tmp_path, *extra):
    return load_config("configs/smoke.yaml", WORLD + BASE + [f"pretrain.shared_dir={tmp_path / 'shared'}", *extra])


@pytest.fixture(scope="module")
def base_run(ray_cluster, tmp_path_factory):
    from glore_ray.stages.pretrain import run_pretrain

    tmp = tmp_path_factory.mktemp("pretrain")
    cfg = _cfg(tmp, f"run.run_dir={tmp / 'seed_0'}")
    return tmp, cfg, run_pretrain(cfg)


def test_the_base_is_trained_probed_and_loadable(base_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.tiny_world import generate_problems

    tmp, cfg, manifest = base_run
    checkpoint = Path(manifest["checkpoint"])
    assert checkpoint.is_relative_to(tmp / "shared" / "pretrain")  # the shared place, not the run dir
    assert manifest["counts"]["rows"] == 96 and manifest["counts"]["steps"] == 6
    probes = json.loads((tmp / "shared" / "pretrain" / "probes.json").read_text())
    assert {"+", "-", "known fact"} <= set(probes) and all(0 <= p["accuracy"] <= 1 and p["n"] > 0 for p in probes.values())
    AutoModelForCausalLM.from_pretrained(checkpoint)
    tok = AutoTokenizer.from_pretrained(checkpoint)
    q = generate_problems(1, seed=3, config=cfg.data.tiny_world)[0]
    text = student_prompt(q.question) + q.reference
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # word problems tokenize too


def test_every_student_seed_starts_from_the_one_base(base_run):
    from glore_ray.stages.pretrain import run_pretrain
    from glore_ray.stages.student import ensure_base_model

    tmp, _, manifest = base_run
    other = _cfg(tmp, "run.seed=7", f"run.run_dir={tmp / 'seed_7'}")
    again = run_pretrain(other)
    assert again["finished"] == manifest["finished"]  # reused, not trained again
    assert ensure_base_model(other, None, []) == manifest["checkpoint"]


def test_a_changed_base_config_is_refused_not_mixed(base_run):
    from glore_ray.stages.pretrain import run_pretrain

    tmp, _, _ = base_run
    with pytest.raises(StageError, match="holds outputs of another config"):
        run_pretrain(_cfg(tmp, "pretrain.known_share=0.25"))


def test_the_job_refuses_a_config_without_a_base_to_pretrain():
    import runpy
    from types import SimpleNamespace

    from glore_ray.config import ConfigError

    job = runpy.run_path(str(Path(__file__).resolve().parents[2] / "jobs" / "pretrain.py"))
    with pytest.raises(ConfigError, match="pass pretrain.enabled=true"):
        job["pretrain"](load_config("configs/smoke.yaml"), SimpleNamespace(force=False))


def test_a_packed_base_trains_several_problems_a_row_through_ray_train(tmp_path, ray_cluster):
    """pretrain.problems_per_row=2: the rows' further segments survive Ray Data and train."""
    from glore_ray.stages.pretrain import run_pretrain

    cfg = _cfg(tmp_path, "pretrain.problems_per_row=2", "pretrain.slipped_share=0.5", "pretrain.known_share=1.0",
               "model.max_len=320", "training.pretrain.max_len=320", f"run.run_dir={tmp_path / 'seed_0'}")
    manifest = run_pretrain(cfg)
    counts = manifest["counts"]
    assert counts["rows"] == 96 + 48 and counts["packed_rows"] == 72 and counts["steps"] == 5
    assert json.loads((Path(manifest["checkpoint"]) / "train_done.json").read_text())["truncated"] == 0
    # The same rows cut at 96 tokens, about one problem: the second problems reached the encoder.
    short = run_pretrain(_cfg(tmp_path / "short", "pretrain.problems_per_row=2", "pretrain.slipped_share=0.5",
                              "pretrain.known_share=1.0", "training.pretrain.max_len=96",
                              f"run.run_dir={tmp_path / 'short_0'}"))
    assert json.loads((Path(short["checkpoint"]) / "train_done.json").read_text())["truncated"] >= 60
    with pytest.raises(ValueError, match="problems_per_row must be >= 1, and > 1 only with corpus problems"):
        _cfg(tmp_path, "pretrain.problems_per_row=2", "pretrain.corpus=chains")
