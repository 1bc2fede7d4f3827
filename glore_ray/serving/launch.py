"""Running the GLoRe service: where the trained checkpoints are, how jobs/serve.py and `serve
run` / `serve deploy` start the app, and a clean shutdown on Ctrl-C or SIGTERM (docs/architecture.md §7).

The app itself (the ingress and its deployments) is built by :func:`glore_ray.serving.app.build_app`.
"""

import functools
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ray import serve

from glore_ray.config import Config, ServeConfig, load_config
from glore_ray.serving.app import MODELS, build_app, replica_cpus, resource_demand
from glore_ray.serving.deployments import load_reward_scorer, load_text_generator

REPO_ROOT = Path(__file__).resolve().parents[2]


def check_fits(serve_cfg: ServeConfig, available: Mapping[str, float]) -> None:
    """On a fixed-size local Ray a replica that does not fit waits forever; say so instead."""
    short = {k: (v, available.get(k, 0.0)) for k, v in resource_demand(serve_cfg).items()
             if v > available.get(k, 0.0) + 1e-9}
    if short:
        need = ", ".join(f"{v:g} {k} (this Ray has {have:g})" for k, (v, have) in short.items())
        raise ValueError(f"the service's replicas need {need}: lower serve.cpus_per_replica / serve.gpus_per_replica, "
                         f"per-model serve.<model>.cpus/replicas or serve.ingress_cpus, or raise run.num_cpus")


def checkpoint_paths(cfg: Config) -> dict[str, Path]:
    """Where each served model's checkpoint lives under the run directory (docs/architecture.md §2): the
    student the EI stage chose and the final checkpoints the model stages recorded. A stage
    that has not finished maps to its (absent) stage directory, which the loaders then name."""
    from glore_ray.artifacts import StageError
    from glore_ray.stages.common import student_checkpoint
    from glore_ray.stages.models import model_checkpoint

    run = Path(cfg.run.run_dir)
    stages = {"orm": "reward_models/orm", "sorm": "reward_models/sorm",
              "global_refiner": "refiners/global", "local_refiner": "refiners/local"}
    paths = {}
    try:
        paths["student"] = Path(student_checkpoint(cfg))
    except StageError:
        paths["student"] = run / "student" / "final.json"
    for name, stage in stages.items():
        try:
            paths[name] = Path(model_checkpoint(cfg.run.run_dir, stage))
        except StageError:
            paths[name] = run / stage / "manifest.json"
    return paths


def checkpoint_loaders(cfg: Config) -> dict[str, Callable[[], object]]:
    """Loaders for the trained checkpoints; a missing one is named before anything is deployed."""
    paths = checkpoint_paths(cfg)
    absent = {m: str(p) for m, p in paths.items() if not p.exists()}
    if absent:
        raise FileNotFoundError(f"missing checkpoints (train those stages first): {absent}")
    loaders = {}
    for m in MODELS:
        path = str(paths[m].resolve())
        if m in ("orm", "sorm"):
            loaders[m] = functools.partial(load_reward_scorer, path)
        else:  # generators decode through the rollout layer, with the run's backend (hf or vLLM)
            threads = max(1, int(replica_cpus(cfg.serve, m)))
            loaders[m] = functools.partial(load_text_generator, path, cfg.rollout, threads)
    return loaders


def app_builder(args: dict):
    """``serve run glore_ray.serving.app:app_builder config=configs/tiny.yaml [overrides=a.b=1,c.d=2]``."""
    args = dict(args or {})
    path = args.pop("config", None)
    overrides = [o for o in str(args.pop("overrides", "")).split(",") if o.strip()]
    if args:
        raise ValueError(f"unknown app_builder args {sorted(args)}; known: config, overrides")
    if path is not None and not Path(path).exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # `serve deploy` runs the builder from another working directory
    cfg = load_config(path, overrides)
    return build_app(cfg, checkpoint_loaders(cfg))


def run_service(cfg: Config, loaders: Mapping[str, Callable[[], object]] | None = None, blocking: bool = True):
    """Start Serve's HTTP proxy on ``serve.host:serve.port``, deploy the app and (by default) block
    until Ctrl-C or SIGTERM, then shut Serve down cleanly. ``loaders`` defaults to the run
    directory's checkpoints."""
    import ray

    from glore_ray.serving import fast_path

    if not ray.is_initialized():
        fast_path.apply_if_enabled(cfg.serve)
        ray.init(address=cfg.run.ray_address, num_cpus=cfg.run.num_cpus)
    if not (cfg.run.ray_address or os.environ.get("RAY_ADDRESS")):  # a local Ray: it will not grow
        check_fits(cfg.serve, ray.cluster_resources())
    if not blocking:
        return _deploy(cfg, loaders)
    # Ctrl-C and SIGTERM (what `kill`, systemd and Kubernetes send) both end in a clean Serve
    # shutdown, from the first moment: Ray's own SIGTERM handler (set by ray.init) would exit
    # with its crash dump instead. A signal mid-deployment stops the deployment too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _deploy(cfg, loaders)
        print(f"glore-ray: serving on http://{cfg.serve.host}:{cfg.serve.port}; Ctrl-C or SIGTERM stops it", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("glore-ray: stopping the service (shutting Serve down) ...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    serve.shutdown()
    print("glore-ray: Serve is shut down.", flush=True)


def _deploy(cfg: Config, loaders):
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    app = build_app(cfg, loaders if loaders is not None else checkpoint_loaders(cfg))
    return serve.run(app, name=cfg.serve.app_name, route_prefix=cfg.serve.route_prefix)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
