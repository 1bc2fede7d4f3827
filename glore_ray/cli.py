"""The command line every job shares: ``--config``, dotted overrides, ``--force``.

    python jobs/student.py --config configs/tiny.yaml student.k=8 training.student.epochs=2
"""

from __future__ import annotations

import argparse
import json
import sys

from glore_ray.config import Config, ConfigError, load_config


def parse_job_args(description: str, argv: list[str] | None = None, extra=None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="configs/tiny.yaml", help="YAML config (default: the tiny world)")
    parser.add_argument("--force", action="store_true", help="discard this stage's existing outputs and redo it")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. student.k=8")
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        parser.exit(2, f"config error: {err}\n")
    return cfg, args


def run_job(description: str, stage_fn, argv: list[str] | None = None, extra=None, needs_ray: bool = True):
    """Parse the command line, run one stage function, print its summary.

    User errors (bad config, bad data, a stage directory of another config, a missing input
    stage) print one clear line and exit 2 instead of a traceback.
    """
    from glore_ray.artifacts import StageError
    from glore_ray.tasks.records import DataError

    cfg, args = parse_job_args(description, argv, extra)
    if needs_ray:
        from glore_ray.rollout.ray_setup import init_ray
        from glore_ray.serving import fast_path

        fast_path.apply_if_enabled(cfg.serve)  # pipeline.serve=true serves on this job's Ray
        init_ray(cfg.run, log_to_driver=False)
    try:
        summary = stage_fn(cfg, args)
    except (StageError, DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print_summary(description.strip().splitlines()[0], summary)
    return summary


def print_summary(title: str, summary: dict) -> None:
    print(f"\n== {title} ==")
    print(json.dumps(summary, indent=2, default=str))
    sys.stdout.flush()
