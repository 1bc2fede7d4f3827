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
