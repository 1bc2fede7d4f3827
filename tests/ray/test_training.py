"""The training layer on the local CPU Ray cluster, with real DeepSpeed and real HF checkpoints.

Each objective must drive its loss down on a small learnable problem; the reward models must
separate two kinds of step; a killed worker must resume; 2 workers must match 1.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from glore_ray.config import TrainConfig
from glore_ray.models.loading import load_causal_lm, load_reward_model
from glore_ray.models.reward import RewardModel
from glore_ray.training.losses import cosine_lr
from glore_ray.training.trainer import DONE_FILE, fine_tune

pytestmark = pytest.mark.ray

PROMPT = "Q: check the steps\nA: "


def tiny_cfg(**overrides) -> TrainConfig:
    base = dict(epochs=4, lr_max=3e-3, lr_min=3e-4, warmup_frac=0.1, batch_size=16, micro_batch=8,
                num_workers=1, max_len=256, cpus_per_worker=1.0, max_failures=0)
    return TrainConfig(**{**base, **overrides})


def lm_rows(problems):
    rows = [{"prompt": f"Q: {p.question}\nA: ", "target": p.reference} for p in problems]
    # One rambling target far past max_len (256 tokens): truncated and counted, not an error.
    rows[0] = {"prompt": rows[0]["prompt"], "target": "\n".join(["1 + 1 = 2"] * 60) + "\n#### 2"}
    return rows


def step_line(rng, good: bool) -> str:
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    return f"{a} + {b} = {a + b}" if good else f"{a} * {b} = {a * b}"


def step_rows(n: int, seed: int):
    """Steps with "+" are good (1), with "*" bad (0); the answer line is ignored (-1)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kinds = [rng.random() < 0.5 for _ in range(3)]
        solution = "\n".join(step_line(rng, k) for k in kinds) + f"\n#### {rng.randint(1, 99)}"
        rows.append({"prompt": PROMPT, "solution": solution, "labels": [int(k) for k in kinds] + [-1]})
    return rows


def pair_rows(n: int, seed: int):
    rng = random.Random(seed)
    make = lambda good: "\n".join(step_line(rng, good) for _ in range(2)) + f"\n#### {rng.randint(1, 99)}"
    return [{"prompt": PROMPT, "chosen": make(True), "rejected": make(False)} for _ in range(n)]


@pytest.fixture(scope="module")
def lm_run(ray_cluster, tiny_lm_dir, tiny_problems, tmp_path_factory):
    """One uninterrupted 1-worker SFT run, shared as the reference by the resume/parallel tests."""
    out = tmp_path_factory.mktemp("sft_ref")
    return fine_tune("lm", lm_rows(tiny_problems[:64]), str(tiny_lm_dir), str(out), tiny_cfg(checkpoint_every=4))


def test_lm_objective_learns_and_exports_hf(lm_run, tiny_lm_dir, tiny_problems):
    history = lm_run.history
    assert [h["step"] for h in history] == list(range(1, 17))
    assert history[-1]["loss"] < 0.65 * history[0]["loss"]
    assert lm_run.final_loss == history[-1]["loss"]
    # The scheduler DeepSpeed stepped is the cosine of Table 4's shape (warm-up, then decay).
    for h in history:
        assert h["lr"] == pytest.approx(cosine_lr(h["step"] - 1, 16, 3e-3, 3e-4, 0.1), rel=1e-6)
    assert lm_run.tokens_per_s > 0 and 0 <= lm_run.padding_fraction < 0.2
    assert lm_run.truncated == 1 and json.loads((Path(lm_run.checkpoint) / DONE_FILE).read_text())["truncated"] == 1
    model = load_causal_lm(lm_run.checkpoint)  # the export is plain from_pretrained-loadable
    assert model.config.architectures == ["LlamaForCausalLM"]
    # A finished out_dir is returned as is, without training again.
    again = fine_tune("lm", lm_rows(tiny_problems[:64]), str(tiny_lm_dir), lm_run.checkpoint, tiny_cfg())
    assert again.final_loss == lm_run.final_loss and len(again.history) == 16


def test_step_bce_rm_separates_steps_from_parquet(ray_cluster, tiny_lm_dir, tmp_path):
    data = tmp_path / "labels"
    data.mkdir()
    rows = step_rows(96, seed=1)
    for i in range(2):  # two Parquet shards, as a labelling stage writes them
        pq.write_table(pa.Table.from_pylist(rows[i * 48:(i + 1) * 48]), data / f"part-{i}.parquet")
    held_out = step_rows(24, seed=2)
    result = fine_tune("step_bce", str(data), str(tiny_lm_dir), str(tmp_path / "rm"), tiny_cfg(),
                       eval_rows=held_out)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.eval["eval_accuracy"] >= 0.9
    # Scores from the saved model separate the kinds, and a save/load round trip is exact.
    rm = load_reward_model(result.checkpoint)
    prompts, solutions = [r["prompt"] for r in held_out], [r["solution"] for r in held_out]
    scores = rm.score_steps(prompts, solutions)
    good = [s for row, ss in zip(held_out, scores) for s, y in zip(ss, row["labels"]) if y == 1]
    bad = [s for row, ss in zip(held_out, scores) for s, y in zip(ss, row["labels"]) if y == 0]
    assert min(good) > max(bad) or sum(good) / len(good) - sum(bad) / len(bad) > 0.5
    rm.save_pretrained(tmp_path / "copy")
    assert RewardModel.from_pretrained(tmp_path / "copy").score_steps(prompts, solutions) == scores
    # Length-sorted chunking returns scores in the callers' order, whatever the chunk size.
    for batch_size in (1, 5, 64):
        again = rm.score_steps(prompts, solutions, batch_size=batch_size)
        assert [len(a) for a in again] == [len(s) for s in scores]
        assert max(abs(x - y) for a, s in zip(again, scores) for x, y in zip(a, s)) < 1e-5
    # So does the service's cut into length groups (GroupedScorer, on CPU).
    for call_cost in (0, 48, 10_000):
        again = rm.score_steps(prompts, solutions, call_cost=call_cost)
        assert max(abs(x - y) for a, s in zip(again, scores) for x, y in zip(a, s)) < 1e-5


def test_pairwise_rm_prefers_chosen(ray_cluster, tiny_lm_dir, tmp_path):
    held_out = pair_rows(24, seed=4)
    result = fine_tune("pairwise", pair_rows(96, seed=3), str(tiny_lm_dir), str(tmp_path / "prm"), tiny_cfg(),
                       eval_rows=held_out)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    rm = load_reward_model(result.checkpoint)
    chosen = [s[-1] for s in rm.score_steps([r["prompt"] for r in held_out], [r["chosen"] for r in held_out])]
    rejected = [s[-1] for s in rm.score_steps([r["prompt"] for r in held_out], [r["rejected"] for r in held_out])]
    assert sum(c > r for c, r in zip(chosen, rejected)) >= 0.9 * len(held_out)
    assert result.eval["eval_accuracy"] >= 0.9


def test_bad_input_fails_before_training(ray_cluster, tiny_lm_dir, tmp_path):
    with pytest.raises(ValueError, match="empty dataset"):
        fine_tune("lm", [], str(tiny_lm_dir), str(tmp_path / "a"), tiny_cfg())
    with pytest.raises(ValueError, match=r"rows\[1\]: missing 'labels'"):
        fine_tune("step_bce", [step_rows(1, 0)[0], {"prompt": "p", "solution": "#### 1"}], str(tiny_lm_dir),
                  str(tmp_path / "b"), tiny_cfg())
    with pytest.raises(ValueError, match="3 labels but the solution has 4 steps"):
        fine_tune("step_bce", [{**step_rows(1, 0)[0], "labels": [1, 0, 1]}], str(tiny_lm_dir),
                  str(tmp_path / "c"), tiny_cfg())
    pq.write_table(pa.Table.from_pylist([{"prompt": "p", "solution": "#### 1"}]), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"lack column\(s\) \['labels'\]"):
        fine_tune("step_bce", str(tmp_path), str(tiny_lm_dir), str(tmp_path / "d"), tiny_cfg())
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_killed_worker_resumes_to_the_same_loss(lm_run, tiny_lm_dir, tiny_problems, tmp_path):
    out = tmp_path / "killed"
    result = fine_tune("lm", lm_rows(tiny_problems[:64]), str(tiny_lm_dir), str(out),
                       tiny_cfg(checkpoint_every=4, max_failures=1), _fail_at_step=10)
    assert (out / "killed_once.marker").exists() and result.resumed == 1  # rank 0 really died at step 10
    assert [h["step"] for h in result.history] == list(range(1, 17))  # steps 9-10 redone, logged once
    assert result.final_loss == pytest.approx(lm_run.final_loss, rel=1e-3)


def test_two_worker_runs_are_bitwise_identical(ray_cluster, tiny_lm_dir, tiny_problems, tmp_path):
    """Same rows, seed and config give the same model bit for bit with 2 data-parallel workers,
    whichever worker Ray Data would have streamed each block to (issue 9: a re-run after a kill
    must reproduce the uninterrupted run)."""
    from safetensors.torch import load_file

    rows = lm_rows(tiny_problems[:48])
    runs = [fine_tune("lm", rows if i == 0 else rows[::-1], str(tiny_lm_dir), str(tmp_path / f"run{i}"),
                      tiny_cfg(num_workers=2, epochs=2)) for i in range(2)]
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    first, second = (load_file(str(Path(r.checkpoint) / "model.safetensors")) for r in runs)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_two_workers_match_one(lm_run, tiny_lm_dir, tiny_problems, tmp_path):
    result = fine_tune("lm", lm_rows(tiny_problems[:64]), str(tiny_lm_dir), str(tmp_path / "dp"),
                       tiny_cfg(num_workers=2, checkpoint_every=4))
    assert result.history[-1]["tokens_per_s"] > 0
    # Same global batch (16) and steps; the shards differ from the 1-worker order, so not bitwise.
    assert result.final_loss == pytest.approx(lm_run.final_loss, rel=0.1)


DRIVER = """
import sys, ray
from glore_ray.config import TrainConfig
from glore_ray.training.trainer import fine_tune
ray.init(address=sys.argv[1], log_to_driver=False)
fine_tune("lm", sys.argv[2], sys.argv[3], sys.argv[4], TrainConfig(**eval(sys.argv[5])))
"""


@pytest.mark.slow
def test_interrupted_driver_resumes_from_last_checkpoint(lm_run, ray_cluster, tiny_lm_dir, tiny_problems,
                                                         tmp_path):
    """Kill the driver (the stage process) after the step-8 checkpoint; calling fine_tune again
    with the same out_dir resumes there and ends where the uninterrupted run ended."""
    import subprocess
    import sys
    import time

    data, out = tmp_path / "rows", tmp_path / "driver"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist(lm_rows(tiny_problems[:64])), data / "part-0.parquet")
    cfg = dict(epochs=4, lr_max=3e-3, lr_min=3e-4, warmup_frac=0.1, batch_size=16, micro_batch=8, num_workers=1,
               max_len=256, cpus_per_worker=1.0, max_failures=0, checkpoint_every=4)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, ray_cluster.get_runtime_context().gcs_address,
                             str(data), str(tiny_lm_dir), str(out), repr(cfg)])
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        states = [json.loads(p.read_text()) for p in out.glob("ray/train/checkpoint_*/trainer_state.json")]
        if any(s["step"] >= 8 for s in states):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the driver finished before it could be interrupted"
    proc.kill()
    proc.wait()
    assert not (out / DONE_FILE).exists()
    result = fine_tune("lm", str(data), str(tiny_lm_dir), str(out), TrainConfig(**cfg))
    assert result.resumed == 1
    assert [h["step"] for h in result.history] == list(range(1, 17))
    assert result.final_loss == pytest.approx(lm_run.final_loss, rel=1e-3)
