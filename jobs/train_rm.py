"""Stage reward_models/<kind>: train an ORM, balanced ORM, SORM, contrastive ORM, self-filtered SORM or
the oracle control (sorm_oracle: the SORM's rows with the tiny world's exact labels).

    python jobs/train_rm.py --config configs/tiny.yaml --kind sorm
    ray job submit --working-dir . -- python jobs/train_rm.py --config configs/tiny.yaml --kind sorm
"""

from glore_ray.cli import run_job
from glore_ray.stages.models import RM_KINDS, run_reward_model

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_reward_model(cfg, args.kind, force=args.force),
            extra=lambda p: p.add_argument("--kind", required=True, choices=RM_KINDS))
