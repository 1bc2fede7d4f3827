"""Loading reward models: a checkpoint that is not one is refused with its path (issue 25, item 5)."""

from __future__ import annotations

import json

import pytest

from glore_ray.models.loading import load_reward_model
from glore_ray.models.reward import RewardModel


@pytest.fixture(scope="module")
def rm_dir(tiny_lm_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("rm")
    RewardModel.from_causal_lm(tiny_lm_dir, seed=0).save_pretrained(path)
    return path


def test_a_saved_reward_model_loads_and_scores_each_step(rm_dir):
    rm = load_reward_model(rm_dir)
    scores = rm.score_steps(["Q: Ben has 7 coins, then gets 5 more.\nA: "], ["7 + 5 = 12\n#### 12"])
    assert len(scores[0]) == 2 and all(0.0 < s < 1.0 for s in scores[0])


def test_a_causal_lm_is_refused_naming_its_path(tiny_lm_dir):
    # Before: transformers loaded it with a random head and a vocabulary-wide logit, and the first
    # score failed with "only one element tensors can be converted to Python scalars".
    with pytest.raises(ValueError, match=rf"{tiny_lm_dir}: not a reward model checkpoint .*LlamaForCausalLM"):
        load_reward_model(tiny_lm_dir)


def test_a_token_classifier_with_several_labels_is_refused(rm_dir, tmp_path):
    for f in rm_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["id2label"] = {"0": "A", "1": "B"}
    config["label2id"] = {"A": 0, "B": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"num_labels 1.*has 2"):
        load_reward_model(tmp_path)
