"""The main job: every stage in order from one config, resumable, with progress and an ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from glore_ray.config import Config


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Config], dict]
    weight: float  # rough share of a tiny-world run's time, for the ETA before timings exist


def pipeline_steps(cfg: Config) -> list[Step]:
    from glore_ray.stages.data import run_data
    from glore_ray.stages.evaluate import run_evaluate
    from glore_ray.stages.labels import run_orm_data, run_sorm_labels, run_sorm_soft_labels
    from glore_ray.stages.models import run_refiner, run_reward_model
    from glore_ray.stages.pretrain import run_pretrain
    from glore_ray.stages.refine_data import run_refine_data
    from glore_ray.stages.student import run_student

    steps = [Step("data", run_data, 0.01)]
    if cfg.pretrain.enabled:  # the tiny base, shared by every run.seed (docs/faithful-world.md)
        steps += [Step("pretrain", run_pretrain, 0.25)]
    steps += [Step("student", run_student, 0.40), Step("orm_data", run_orm_data, 0.05),
              Step("sorm_labels", run_sorm_labels, 0.12)]
    if "sorm_soft" in cfg.pipeline.extra_reward_models:  # its labels: every rollout of every prefix
        steps += [Step("sorm_soft_labels", run_sorm_soft_labels, 0.10)]
    steps += [Step(f"reward_models/{k}", lambda c, k=k: run_reward_model(c, k), 0.06)
              for k in ("orm", "balanced_orm", "sorm", *cfg.pipeline.extra_reward_models)]
    steps += [Step("refine_data", run_refine_data, 0.01)]
    refiners = ("global", "local", *(("value",) if cfg.refine.value_refinement else ()))  # value: App. J
    steps += [Step(f"refiners/{k}", lambda c, k=k: run_refiner(c, k), 0.06) for k in refiners]
    steps += [Step("evaluate", run_evaluate, 0.08)]
    return steps


def run_pipeline(cfg: Config, log=print) -> dict:
    """Run every stage; finished stages are skipped (their manifests say so)."""
    steps = pipeline_steps(cfg)
    total = sum(s.weight for s in steps)
    t0, done_weight, summary = time.time(), 0.0, {}
    for i, step in enumerate(steps, 1):
        log(f"[{i}/{len(steps)}] {step.name} ...", flush=True)
        start = time.time()
        manifest = step.run(cfg)
        took = time.time() - start
        done_weight += step.weight
        elapsed = time.time() - t0
        fresh = manifest.get("finished", 0) >= start  # else the manifest was already there
        eta = elapsed / done_weight * (total - done_weight) if fresh else float("nan")
        status = "done" if fresh else "already done"
        log(f"[{i}/{len(steps)}] {step.name}: {status} in {took:.0f}s; elapsed {elapsed:.0f}s"
            + (f", ETA {eta:.0f}s" if eta == eta and i < len(steps) else ""), flush=True)
        summary[step.name] = {"seconds": round(took, 1), "stage_seconds": manifest.get("seconds"),
                              "counts": manifest.get("counts")}
    summary["total_seconds"] = round(time.time() - t0, 1)
    return summary
