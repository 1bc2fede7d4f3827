"""Reward-model scoring as Ray tasks: the ORM/SORM step scores that evaluation needs.

One task per chunk of solutions, each loading the reward model where Ray places it (a GPU at
real scale when ``num_gpus`` > 0), so the driver never holds a model.
"""

from __future__ import annotations

import ray


@ray.remote
def _score_chunk(model_path: str, prompts: list[str], solutions: list[str], device: str) -> list[list[float]]:
    import torch

    from glore_ray.models.loading import load_reward_model

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    model = load_reward_model(model_path, device)
    return model.score_steps(prompts, solutions)


def score_steps(model_path: str, prompts: list[str], solutions: list[str], chunks: int = 2,
                num_cpus: float = 1, num_gpus: float = 0) -> list[list[float]]:
    """Per-step probabilities for every (prompt, solution), in order, over ``chunks`` tasks."""
    if len(prompts) != len(solutions):
        raise ValueError(f"score_steps: {len(prompts)} prompts but {len(solutions)} solutions")
    if not prompts:
        return []
    size = -(-len(prompts) // max(1, chunks))
    device = "cuda" if num_gpus > 0 else "cpu"
    task = _score_chunk.options(num_cpus=num_cpus, num_gpus=num_gpus)
    refs = [task.remote(model_path, prompts[i:i + size], solutions[i:i + size], device)
            for i in range(0, len(prompts), size)]
    return [scores for chunk in ray.get(refs) for scores in chunk]
