"""The backend choice: one generator per ``rollout.backend`` (docs/architecture.md §5).

Apart from ``engine`` so that the backends import the protocol and records from ``engine`` and
this module imports the backends, with no cycle between them.
"""

from __future__ import annotations

from glore_ray.rollout.engine import check_model_path


def load_generator(path: str, rollout_cfg, device: str | None = None, prefill_call_cost: int = 0,
                   reserve_cache: bool = False):
    """The backend named by ``rollout_cfg.backend`` for the checkpoint at ``path`` (``prefill_call_cost``,
    ``reserve_cache``: see :class:`~glore_ray.rollout.hf_engine.HFGenerator`; vLLM schedules its own
    prefills and manages its own KV cache)."""
    if rollout_cfg.backend == "vllm":
        from glore_ray.rollout.vllm_engine import VLLMGenerator

        return VLLMGenerator(check_model_path(path), rollout_cfg)
    from glore_ray.rollout.hf_engine import HFGenerator

    return HFGenerator(path, device=device or rollout_cfg.device, batch_size=rollout_cfg.batch_size,
                       dtype=rollout_cfg.dtype, prefill_call_cost=prefill_call_cost, reserve_cache=reserve_cache)
