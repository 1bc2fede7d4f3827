"""The model deployments of the GLoRe service (docs/architecture.md §7): Student, GlobalRefiner and LocalRefiner
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

from glore_ray.models.batching import CPU_FORWARD_CALL_COST
from glore_ray.rollout.engine import RolloutRequest
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


class Coalescer:
    """One blocking model call at a time over *everything* queued for it (up to ``max_size``).

    ``@serve.batch`` closes a batch after ``batch_wait_timeout_s`` whether or not the model is
    free, so under load it queues many tiny batches behind a busy model. Each such batch hands its
    items here; whoever holds the model next takes all pending items, so the batch size grows with
    the queue (continuous batching) while an idle replica still answers after one short wait.
    """

    def __init__(self, fn: Callable[[list], list], max_size: int):
        self.fn, self.max_size = fn, max_size
        self.pending: list[tuple[object, asyncio.Future]] = []
        self.lock = asyncio.Lock()
        self.calls = 0
        self.items = 0

    async def submit(self, items: list) -> list:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self.pending.extend(zip(items, futures))
        async with self.lock:
            while not all(f.done() for f in futures):
                chunk, self.pending = self.pending[: self.max_size], self.pending[self.max_size:]
                self.calls += 1
                self.items += len(chunk)
                try:
                    # A thread keeps the replica's event loop free to queue requests meanwhile.
                    results = await asyncio.to_thread(self.fn, [item for item, _ in chunk])
                except Exception as err:  # noqa: BLE001 - every caller in the chunk gets the error
                    for _, future in chunk:
                        future.set_exception(err)
                    continue
                for (_, future), result in zip(chunk, results):
                    future.set_result(result)
        return [f.result() for f in futures]

    def stats(self) -> dict:
        return {"batches": self.calls, "items": self.items, "mean_batch": self.items / self.calls if self.calls else 0.0}


# max_concurrent_batches is high on purpose: each closed batch goes straight to the Coalescer,
# which serialises the model calls itself.
_BATCH = dict(max_batch_size=16, batch_wait_timeout_s=0.01, max_concurrent_batches=256)


class _Batched:
    """What both model deployments are: a model behind a ``@serve.batch`` queue (the method named
    ``QUEUE``) whose closed batches a Coalescer turns into model calls."""

    QUEUE = ""

    def _start(self, model, work: Callable, batch_max_size: int, batch_wait_timeout_s: float) -> None:
        self.model = model
        self.coalescer = Coalescer(work, batch_max_size)
        self.configure_batching(batch_max_size, batch_wait_timeout_s)

    def configure_batching(self, batch_max_size: int, batch_wait_timeout_s: float) -> None:
        """Resize the batch queue in place (the benchmark compares batch sizes on one replica)."""
        queue = getattr(self, self.QUEUE)
        queue.set_max_batch_size(batch_max_size)
        queue.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.coalescer.max_size = batch_max_size

    def batch_stats(self) -> dict:
        return self.coalescer.stats()


@serve.deployment
class GeneratorDeployment(_Batched):
    """A greedy text generator (the student, or a refiner) behind a batching queue."""

    QUEUE = "generate"

    def __init__(self, loader: Callable[[], object], batch_max_size: int = 16, batch_wait_timeout_s: float = 0.01):
        self._start(as_text_generator(loader()), self._generate_many, batch_max_size, batch_wait_timeout_s)

    @serve.batch(**_BATCH)
    async def generate(self, prompts: list[str], max_new_tokens: list[int]) -> list[str]:
        return await self.coalescer.submit(list(zip(prompts, max_new_tokens)))

    def _generate_many(self, items: list[tuple[str, int]]) -> list[str]:
        outputs: list[str | None] = [None] * len(items)
        # Requests may ask for different budgets; one model call per distinct budget.
        for budget in sorted({n for _, n in items}):
            index = [i for i, (_, n) in enumerate(items) if n == budget]
            texts = self.model.generate_texts([items[i][0] for i in index], budget)
            if len(texts) != len(index):
                raise RuntimeError(f"generator returned {len(texts)} texts for {len(index)} prompts")
            for i, text in zip(index, texts):
                outputs[i] = str(text)
        return outputs


@serve.deployment
class ScorerDeployment(_Batched):
    """A step scorer (ORM or SORM) behind a batching queue."""

    QUEUE = "score"

    def __init__(self, loader: Callable[[], object], batch_max_size: int = 16, batch_wait_timeout_s: float = 0.01):
        self._start(as_step_scorer(loader()), self._score_many, batch_max_size, batch_wait_timeout_s)

    @serve.batch(**_BATCH)
    async def score(self, prompts: list[str], solutions: list[str]) -> list[list[float]]:
        return await self.coalescer.submit(list(zip(prompts, solutions)))

    async def score_all(self, prompts: list[str], solutions: list[str]) -> list[list[float]]:
        """Several solutions of one request in one call (the refinements, paper 3.2's rerank): one
        handle round trip instead of one each, merged by the coalescer with the batch queue's items."""
        if len(prompts) != len(solutions):
            raise ValueError(f"score_all: {len(prompts)} prompts for {len(solutions)} solutions")
        return await self.coalescer.submit(list(zip(prompts, solutions)))

    def _score_many(self, items: list[tuple[str, str]]) -> list[list[float]]:
        solutions = [solution for _, solution in items]
        scores = self.model.score_steps([prompt for prompt, _ in items], solutions)
        if len(scores) != len(solutions):
            raise RuntimeError(f"scorer returned {len(scores)} score lists for {len(solutions)} solutions")
        checked = []
        for solution, row in zip(solutions, scores):
            n_steps = len(split_steps(solution))
            if len(row) != n_steps:
                raise RuntimeError(f"scorer returned {len(row)} step scores for a solution of {n_steps} steps")
            checked.append([float(x) for x in row])
        return checked


# --------------------------------------------------------------------------------------------
# Loaders for the trained checkpoints


class GreedyTexts:
    """A rollout-layer ``Generator`` (HFGenerator or VLLMGenerator, docs/architecture.md §5) as the service's text
    generator: one greedy completion per prompt, cut after its answer line, decoded exactly as the
    evaluation's drafts and refinements are, so the service answers what ``jobs/evaluate.py`` measured."""

    def __init__(self, generator):
        self.generator = generator

    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        requests = [RolloutRequest(f"serve-{i}", prompt, n=1, greedy=True) for i, prompt in enumerate(prompts)]
        return [samples[0].text for samples in self.generator.generate(requests, max_new_tokens, temperature=0.0)]


def load_text_generator(path: str, rollout_cfg=None, num_threads: int | None = 1) -> GreedyTexts:
    """The backend ``rollout_cfg`` names (transformers by default, vLLM at real scale) for the
    checkpoint at ``path``. ``num_threads`` caps torch's CPU threads: replicas share few cores.
    On CPU a served batch prefills in length groups (``HFGenerator(prefill_call_cost)``): its
    prompts are a few arbitrary requests, not a length-sorted stage; and it decodes into a
    reserved KV cache (``reserve_cache``), which pays for the refiners' long prompts."""
    import torch

    from glore_ray.config import RolloutConfig
    from glore_ray.rollout.backends import load_generator
    from glore_ray.rollout.engine import pick_device

    if num_threads:
        torch.set_num_threads(num_threads)
    cfg = rollout_cfg or RolloutConfig()
    device = pick_device(cfg.device)
    on_cpu = device == "cpu"
    cost = CPU_FORWARD_CALL_COST if on_cpu else 0
    return GreedyTexts(load_generator(str(path), cfg, device=device, prefill_call_cost=cost, reserve_cache=on_cpu))


class GroupedScorer:
    """A RewardModel as the service's step scorer: on CPU its batch is cut into length groups
    (``score_steps(call_cost=...)``), since a served batch mixes a handful of arbitrary lengths."""

    def __init__(self, model):
        self.model = model
        on_cpu = next(model.parameters()).device.type == "cpu"
        self.call_cost = CPU_FORWARD_CALL_COST if on_cpu else None

    def score_steps(self, prompts: list[str], solutions: list[str]) -> list[list[float]]:
        return self.model.score_steps(prompts, solutions, call_cost=self.call_cost)


def load_reward_scorer(path: str) -> GroupedScorer:
    """The trained ORM/SORM (a RewardModel) as the service's scorer."""
    from glore_ray.models.loading import load_reward_model

    return GroupedScorer(load_reward_model(str(path)))
