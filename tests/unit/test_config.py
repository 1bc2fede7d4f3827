"""Configs: every shipped YAML loads; bad keys, types and values are named with their source."""

import dataclasses
from pathlib import Path

import pytest

from glore_ray.config import Config, ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
SERVE_CONFIGS = {"serve.yaml"}  # Ray Serve's own schema, checked by the serving tests


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name not in SERVE_CONFIGS], ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.digest() == load_config(path).digest()


def test_defaults_follow_paper_table4():
    cfg = load_config()
    assert (cfg.training.student.epochs, cfg.training.student.lr_max, cfg.training.student.batch_size) == (4, 2e-5, 128)
    assert (cfg.training.rm.epochs, cfg.training.rm.lr_max, cfg.training.rm.batch_size) == (1, 2e-6, 256)
    assert (cfg.training.refiner.lr_max, cfg.training.refiner.lr_min) == (2e-5, 2e-7)
    assert cfg.student.k == 96 and cfg.labels.sorm_k == 8 and cfg.labels.sorm_max_new_tokens == 300


def test_dotted_overrides_and_coercion(tmp_path):
    cfg = load_config(None, ["student.k=4", "training.rm.lr_max=1e-5", "data.tiny_world.max_ops=3", "run.ray_address=null"])
    assert cfg.student.k == 4 and cfg.training.rm.lr_max == 1e-5 and cfg.data.tiny_world.max_ops == 3
    assert cfg.run.ray_address is None
    cfg = load_config(None, ["data.tiny_world.ops=[+, '-']"])
    assert cfg.data.tiny_world.ops == ("+", "-")


def test_errors_name_key_and_source(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("student:\n  kk: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'student\.kk'"):
        load_config(path)
    path.write_text("student:\n  k: three\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: student\.k = 'three' must be int"):
        load_config(path)
    path.write_text("labels:\n  scheduler: magic\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: bad value in labels: scheduler must be"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"<override>: unknown key 'rollout\.nope'"):
        load_config(None, ["rollout.nope=1"])
    with pytest.raises(ConfigError, match=r"<override> 'student\.k': expected key\.sub=value"):
        load_config(None, ["student.k"])
    with pytest.raises(ConfigError, match=r"<override>: bad value in training\.rm: lr_min"):
        load_config(None, ["training.rm.lr_min=1.0"])
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)
    path.write_text("student: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.student.k = 3


def test_digest_ignores_resources_but_not_results():
    """More actors or another CPU share is the same run; another K or seed is not."""
    base = load_config("configs/tiny.yaml")
    same = load_config("configs/tiny.yaml", ["rollout.num_actors=8", "rollout.cpus_per_actor=4",
                                             "labels.sorm_max_batch=100", "rollout.prefix_caching=false"])
    assert base.digest("labels", "rollout", "run.seed") == same.digest("labels", "rollout", "run.seed")
    for change in ("labels.sorm_k=4", "rollout.temperature=0.5", "run.seed=1"):
        other = load_config("configs/tiny.yaml", [change])
        assert other.digest("labels", "rollout", "run.seed") != base.digest("labels", "rollout", "run.seed"), change


def test_extra_reward_models_accept_the_oracle_control_and_name_the_known_kinds():
    cfg = load_config(None, ["pipeline.extra_reward_models=[contrastive_orm, sorm_filtered, sorm_oracle]"])
    assert cfg.pipeline.extra_reward_models == ("contrastive_orm", "sorm_filtered", "sorm_oracle")
    with pytest.raises(ConfigError, match=r"unknown \['oracle'\]; known: contrastive_orm, sorm_filtered, sorm_oracle, sorm_soft"):
        load_config(None, ["pipeline.extra_reward_models=[oracle]"])


def test_student_stage_digest_sees_the_sampling_settings():
    """EI and evaluation samples depend on rollout.temperature: a changed temperature is a new
    student stage, never the old one's samples (resource-only fields still are not)."""
    from glore_ray.stages.student import DIGEST

    base = load_config("configs/tiny.yaml")
    for change in ("rollout.temperature=0.7", "rollout.top_p=0.9", "student.eval_k=4", "student.ei_dedup=round"):
        assert load_config("configs/tiny.yaml", [change]).digest(*DIGEST) != base.digest(*DIGEST), change
    assert load_config("configs/tiny.yaml", ["rollout.num_actors=1"]).digest(*DIGEST) == base.digest(*DIGEST)


def test_knowledge_world_knobs_enter_digests_only_when_the_world_is_on():
    """tiny_world.containers / fact_seed do nothing when containers is 0: they stay out of every
    digest then, so run directories made before the knobs existed still match their config."""
    plain = load_config("configs/tiny.yaml")
    assert load_config("configs/tiny.yaml", ["data.tiny_world.fact_seed=3"]).digest("data") == plain.digest("data")
    world = ['data.tiny_world.ops=["+","-","*"]', "data.tiny_world.product_m_range=[11,49]"]
    on = load_config("configs/tiny.yaml", [*world, "data.tiny_world.containers=4"])
    assert on.digest("data") != load_config("configs/tiny.yaml", world).digest("data")
    assert on.digest("data") != load_config("configs/tiny.yaml", [*world, "data.tiny_world.containers=4",
                                                                  "data.tiny_world.fact_seed=1"]).digest("data")


def test_distractors_enter_digests_only_when_a_problem_has_some():
    """tiny_world.distractors (0, 0) makes the problems of the runs made before it existed: it
    stays out of every digest then, and changes it otherwise."""
    plain = load_config("configs/tiny.yaml")
    assert "distractors" not in str(plain.digest("data")) and \
        load_config("configs/tiny.yaml", ["data.tiny_world.distractors=[0,0]"]).digest("data") == plain.digest("data")
    assert load_config("configs/tiny.yaml", ["data.tiny_world.distractors=[0,2]"]).digest("data") != plain.digest("data")



def test_the_base_may_pretrain_on_shorter_chains_than_the_students():
    """pretrain.min_ops/max_ops: the base's world is the student's with other chain lengths; both
    null (the default) is the student's world and leaves every digest as it was before the knobs."""
    from glore_ray.stages.pretrain import DIGEST, base_world

    on = ["pretrain.enabled=true"]
    plain = load_config("configs/tiny.yaml", on)
    assert base_world(plain) is plain.data.tiny_world
    assert plain.digest("pretrain") == "bf8ef4db04718bba"  # the pretrain section's digest before the knobs
    short = load_config("configs/tiny.yaml", [*on, "pretrain.min_ops=1", "pretrain.max_ops=2"])
    world = base_world(short)
    assert (world.min_ops, world.max_ops) == (1, 2) and world.ops == plain.data.tiny_world.ops
    assert short.digest(*DIGEST) != plain.digest(*DIGEST)
    for bad in (["pretrain.min_ops=2"], ["pretrain.min_ops=3", "pretrain.max_ops=2"]):
        with pytest.raises(ConfigError, match="min_ops"):
            load_config("configs/tiny.yaml", [*on, *bad])


def test_the_bases_slipped_rows_enter_its_digest_only_when_on_and_need_whole_problems():
    from glore_ray.stages.pretrain import DIGEST

    on = ["pretrain.enabled=true"]
    plain = load_config("configs/tiny.yaml", on)
    assert plain.digest("pretrain") == "bf8ef4db04718bba"  # as before the knob
    assert load_config("configs/tiny.yaml", [*on, "pretrain.slipped_share=0.5"]).digest(*DIGEST) != plain.digest(*DIGEST)
    for bad in (["pretrain.slipped_share=-0.1"], ["pretrain.slipped_share=0.5", "pretrain.corpus=chains"]):
        with pytest.raises(ConfigError, match="slipped_share"):
            load_config("configs/tiny.yaml", [*on, *bad])
