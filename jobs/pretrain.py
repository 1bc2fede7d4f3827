"""Stage pretrain (tiny world, pretrain.enabled): the base every student seed starts from, trained
once with pretrain.seed on the world's worked problems; prints what it knows per kind of step.

    python jobs/pretrain.py --config configs/tiny.yaml pretrain.enabled=true
    ray job submit --working-dir . -- python jobs/pretrain.py --config configs/tiny.yaml pretrain.enabled=true
"""

from glore_ray.cli import run_job
from glore_ray.config import ConfigError
from glore_ray.stages.pretrain import run_pretrain


def pretrain(cfg, args):
    if not cfg.pretrain.enabled:
        raise ConfigError("pretrain.enabled is off in this config (the student starts from random init); "
                          "pass pretrain.enabled=true")
    return run_pretrain(cfg, force=args.force)


if __name__ == "__main__":
    run_job(__doc__, pretrain)
