"""The model deployments of the GLoRe service (DESIGN §7): Student, GlobalRefiner and LocalRefiner
are generators; ORM and SORM are step scorers. Each takes a *loader* (a picklable callable that
returns the model object) so the same deployment serves a real checkpoint, a vLLM engine or a tiny
test model; each batches its requests with ``@serve.batch``.

Model interfaces (duck-typed, checked when the replica starts):
- generator: ``generate_texts(prompts: list[str], max_new_tokens: int) -> list[str]`` (greedy);
- scorer: ``score_steps(prompts: list[str], solutions: list[str]) -> list[list[float]]``, one score
  per step (non-empty line) of each solution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ray import serve

from glore_ray.tasks.steps import split_steps


@runtime_checkable
class TextGenerator(Protocol):
    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]: ...


@runtime_checkable
class StepScorer(Protocol):
    def score_steps(self, prompts: list[str], solutions: list[str]) -> list[list[float]]: ...


def as_text_generator(model) -> TextGenerator:
    """Accept any object with a callable ``generate_texts``; say what is missing otherwise."""
    if not callable(getattr(model, "generate_texts", None)):
        raise TypeError(f"{type(model).__name__} is not a generator: it needs generate_texts(prompts, max_new_tokens)")
    return model


def as_step_scorer(model) -> StepScorer:
    if not callable(getattr(model, "score_steps", None)):
        raise TypeError(f"{type(model).__name__} is not a scorer: it needs score_steps(prompts, solutions)")
    return model


class BatchStats:
    """Batches and items a replica processed (the benchmark reads the mean batch size)."""

    def __init__(self):
        self.batches = 0
        self.items = 0

    def add(self, n: int) -> None:
        self.batches += 1
        self.items += n

    def as_dict(self) -> dict:
        return {"batches": self.batches, "items": self.items,
                "mean_batch": self.items / self.batches if self.batches else 0.0}


@serve.deployment
class GeneratorDeployment:
    """A greedy text generator (the student, or a refiner) behind a batching queue."""

    def __init__(self, loader: Callable[[], object], batch_max_size: int = 16, batch_wait_timeout_s: float = 0.01):
        self.model = as_text_generator(loader())
        self.generate.set_max_batch_size(batch_max_size)
        self.generate.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.stats = BatchStats()

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def generate(self, prompts: list[str], max_new_tokens: list[int]) -> list[str]:
        self.stats.add(len(prompts))
        outputs: list[str | None] = [None] * len(prompts)
        # Requests may ask for different budgets; one model call per distinct budget.
        for budget in sorted(set(max_new_tokens)):
            index = [i for i, n in enumerate(max_new_tokens) if n == budget]
            # A thread keeps the replica's event loop free to queue the next batch meanwhile.
            texts = await asyncio.to_thread(self.model.generate_texts, [prompts[i] for i in index], budget)
            if len(texts) != len(index):
                raise RuntimeError(f"generator returned {len(texts)} texts for {len(index)} prompts")
            for i, text in zip(index, texts):
                outputs[i] = str(text)
        return outputs

    def batch_stats(self) -> dict:
        return self.stats.as_dict()


@serve.deployment
class ScorerDeployment:
    """A step scorer (ORM or SORM) behind a batching queue."""

    def __init__(self, loader: Callable[[], object], batch_max_size: int = 16, batch_wait_timeout_s: float = 0.01):
        self.model = as_step_scorer(loader())
        self.score.set_max_batch_size(batch_max_size)
        self.score.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.stats = BatchStats()

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def score(self, prompts: list[str], solutions: list[str]) -> list[list[float]]:
        self.stats.add(len(prompts))
        scores = await asyncio.to_thread(self.model.score_steps, prompts, solutions)
        if len(scores) != len(solutions):
            raise RuntimeError(f"scorer returned {len(scores)} score lists for {len(solutions)} solutions")
        checked = []
        for solution, row in zip(solutions, scores):
            n_steps = len(split_steps(solution))
            if len(row) != n_steps:
                raise RuntimeError(f"scorer returned {len(row)} step scores for a solution of {n_steps} steps")
            checked.append([float(s) for s in row])
        return checked

    def batch_stats(self) -> dict:
        return self.stats.as_dict()


# --------------------------------------------------------------------------------------------
# Loaders for Hugging Face checkpoints (the tiny world's models; a stand-in until the rollout
# HFGenerator / models.reward.RewardModel adapters are wired in by the lead).


class HFTextGenerator:
    """Greedy generation with a causal LM saved by ``save_pretrained`` (tokenizer included)."""

    def __init__(self, path: str, device: str = "cpu", num_threads: int | None = 1):
        import torch

        from glore_ray.models.loading import load_causal_lm, load_tokenizer

        if num_threads:
            torch.set_num_threads(num_threads)  # replicas share few cores; don't oversubscribe
        self.torch = torch
        self.tokenizer = load_tokenizer(path)  # [BAD] and a pad token guaranteed
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        self.model = load_causal_lm(path, device=device, tokenizer=self.tokenizer).eval()
        self.device = device

    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)  # [B, T]
        with self.torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)  # [B, T + new]
        new = out[:, batch["input_ids"].shape[1]:]
        return [cut_after_answer(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def cut_after_answer(text: str) -> str:
    """A solution ends at its ``#### answer`` line (DESIGN §3): drop whatever follows it.

    >>> cut_after_answer("1 + 1 = 2\\n#### 2\\nQ: more")
    '1 + 1 = 2\\n#### 2'
    """
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if line.lstrip().startswith("####"):
            return "\n".join(lines[: n + 1])
    return text


def load_hf_generator(path: str) -> HFTextGenerator:
    return HFTextGenerator(str(path))


def load_reward_scorer(path: str):
    """The trained ORM/SORM: a RewardModel, whose ``score_steps(prompts, solutions)`` is the scorer
    interface."""
    from glore_ray.models.loading import load_reward_model

    return load_reward_model(str(path))
