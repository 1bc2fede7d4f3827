"""Test support for the rollout layer: a tiny Llama that has memorised a few solutions.

A random-init model never writes a ``#### N`` line, so the stop rule, the grader's verdict and
prefix continuations are checked on a real tiny Llama trained (seconds, CPU) to recite fixed
solutions, followed by junk that only the stop rule keeps out of the text.
"""

from __future__ import annotations

from glore_ray.tasks.tiny_world import generate_problems

EOS_PROMPT = "Q: say 7\nA: "  # memorised as "7 7 7</s>" (no answer line): checks the EOS stop
EOS_TEXT = "7 7 7"


def memorised_problems(count: int = 4):
    return generate_problems(count, seed=7, split="train")


def prompt_of(problem) -> str:
    return f"Q: {problem.question}\nA: "


def memorise(tokenizer, problems, steps: int = 150, seed: int = 0, n_head: int = 4):
    """A tiny LlamaForCausalLM trained to recite each problem's reference (then junk)."""
    import torch

    from glore_ray.config import ModelConfig
    from glore_ray.models.tiny import build_tiny_lm

    texts = [f"{prompt_of(p)}{p.reference}\nQ: junk after the answer 1 2 3" for p in problems]
    texts.append(EOS_PROMPT + EOS_TEXT + tokenizer.eos_token)
    model = build_tiny_lm(ModelConfig(n_layer=2, d_model=64, n_head=n_head, d_ff=128, max_len=256), tokenizer, seed)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = model(**batch, position_ids=position_ids, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    return model, float(loss.detach())


_CACHE: dict = {}


def memorised_lm_dir(tokenizer, root, n_head: int = 4) -> str:
    """The memorised model saved in HF format under ``root`` (trained once per process and head
    count: vLLM's CPU attention needs heads of 32, ``n_head=2``)."""
    from pathlib import Path

    if n_head not in _CACHE:
        model, loss = memorise(tokenizer, memorised_problems(), steps=150 if n_head == 4 else 300, n_head=n_head)
        assert loss < 0.1, f"the tiny model failed to memorise its solutions (loss {loss:.3f})"
        path = Path(root) / f"memorised_lm_{n_head}h"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        _CACHE[n_head] = str(path)
    return _CACHE[n_head]


def sample_killing_one_actor(stage, requests, model_dir, cfg, base_seed: int, timeout: float = 600):
    """``sample_to_stage`` in a thread, SIGKILLing one generator actor once the first shard is on
    disk: (the summary, how many shards were done at the kill)."""
    import os
    import signal
    import threading
    import time

    from glore_ray.rollout.sampler import sample_to_stage

    result = {}
    worker = threading.Thread(target=lambda: result.update(
        summary=sample_to_stage(requests, stage, "rollouts", model_dir, cfg, base_seed=base_seed)))
    worker.start()
    deadline = time.time() + timeout / 2
    while not list(stage.table_dir("rollouts").glob("part-*.parquet")) and time.time() < deadline:
        time.sleep(0.05)
    victims = map_workers()
    assert victims, "no generator actor found to kill"
    os.kill(victims[0].pid, signal.SIGKILL)
    done_at_kill = len(list(stage.table_dir("rollouts").glob("part-*.parquet")))
    worker.join(timeout=timeout)
    assert not worker.is_alive() and "summary" in result
    assert done_at_kill < len(requests), "the run ended before the kill: the test proved nothing"
    return result["summary"], done_at_kill


def map_workers():
    """The live Ray Data actors (the generator pool) of this test session's cluster."""
    import ray
    from ray.util.state import list_actors

    address = ray.get_runtime_context().gcs_address  # other Ray instances may run on this machine
    alive = list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=1000)
    return [a for a in alive if "MapWorker" in a.class_name]
