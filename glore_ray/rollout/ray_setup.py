"""One way for every job to reach Ray: a cluster when one is named, else a local instance.

``ray job submit`` sets ``RAY_ADDRESS`` for the entrypoint, so a job run that way joins the
cluster it was submitted to; ``run.ray_address`` names one explicitly; with neither, the job
starts Ray on this machine (the tiny world on a laptop).
"""

from __future__ import annotations

import os


def ray_address(run_cfg) -> str | None:
    """The cluster to join: ``run.ray_address``, else ``$RAY_ADDRESS``, else None (start local)."""
    return getattr(run_cfg, "ray_address", None) or os.environ.get("RAY_ADDRESS") or None


def init_ray(run_cfg=None, **kwargs):
    """Connect to (or start) Ray once per process and return the ``ray`` module.

    Extra keyword arguments go to ``ray.init`` (e.g. ``runtime_env``). Calling it again is a
    no-op, so library functions may call it defensively.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = ray_address(run_cfg)
    env = {"TOKENIZERS_PARALLELISM": "false"}
    runtime_env = kwargs.pop("runtime_env", {}) or {}
    runtime_env = {**runtime_env, "env_vars": {**env, **runtime_env.get("env_vars", {})}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, **kwargs)
    else:
        num_cpus = getattr(run_cfg, "num_cpus", None)
        ray.init(num_cpus=num_cpus, runtime_env=runtime_env, **kwargs)
    return ray
