"""Step scoring as Ray tasks: the ORM/SORM step scores, and the student's own step log-probs
(the training-free baseline), that evaluation needs.

One task per chunk of solutions, each loading its model where Ray places it (a GPU at real scale
when ``num_gpus`` > 0), so the driver never holds a model.
"""

from __future__ import annotations

import ray


def _use_assigned_cpus() -> None:
    import torch

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))


@ray.remote
def _score_chunk(model_path: str, prompts: list[str], solutions: list[str], device: str) -> list[list[float]]:
    from glore_ray.models.loading import load_reward_model

    _use_assigned_cpus()
    model = load_reward_model(model_path, device)
    return model.score_steps(prompts, solutions)


@ray.remote
def _logprob_chunk(model_path: str, prompts: list[str], solutions: list[str], device: str) -> list[list[float]]:
    from glore_ray.models.loading import load_causal_lm
    from glore_ray.models.logprob import step_mean_logprobs
    from glore_ray.models.tokenizer import load_tokenizer

    _use_assigned_cpus()
    tokenizer = load_tokenizer(model_path)
    model = load_causal_lm(model_path, device, tokenizer=tokenizer)
    return step_mean_logprobs(model, tokenizer, prompts, solutions)


def score_steps(model_path: str, prompts: list[str], solutions: list[str], chunks: int = 2,
                num_cpus: float = 1, num_gpus: float = 0) -> list[list[float]]:
    """Per-step probabilities of a reward model for every (prompt, solution), in order."""
    return _fan_out(_score_chunk, "score_steps", model_path, prompts, solutions, chunks, num_cpus, num_gpus)


def step_logprobs(model_path: str, prompts: list[str], solutions: list[str], chunks: int = 2,
                  num_cpus: float = 1, num_gpus: float = 0) -> list[list[float]]:
    """Per-step mean token log-probs of a causal LM for every (prompt, solution), in order
    (:func:`~glore_ray.models.logprob.step_mean_logprobs`)."""
    return _fan_out(_logprob_chunk, "step_logprobs", model_path, prompts, solutions, chunks, num_cpus, num_gpus)


def _fan_out(chunk_task, name: str, model_path: str, prompts: list[str], solutions: list[str], chunks: int,
             num_cpus: float, num_gpus: float) -> list[list[float]]:
    """``chunk_task`` over ``chunks`` contiguous slices of the solutions, results in input order."""
    if len(prompts) != len(solutions):
        raise ValueError(f"{name}: {len(prompts)} prompts but {len(solutions)} solutions")
    if not prompts:
        return []
    size = -(-len(prompts) // max(1, chunks))
    device = "cuda" if num_gpus > 0 else "cpu"
    task = chunk_task.options(num_cpus=num_cpus, num_gpus=num_gpus)
    refs = [task.remote(model_path, prompts[i:i + size], solutions[i:i + size], device)
            for i in range(0, len(prompts), size)]
    return [scores for chunk in ray.get(refs) for scores in chunk]
