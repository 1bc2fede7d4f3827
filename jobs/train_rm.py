"""Stage reward_models/<kind>: train an ORM, balanced ORM, SORM, contrastive ORM, self-filtered SORM,
the oracle control (sorm_oracle: the SORM's rows with the tiny world's exact labels), the soft-label
SORM (sorm_soft: after jobs/sorm_labels.py --soft), or a step reward model on any table in the stepwise layout (prompt, completions, labels; --kind stepwise --data PATH).

    python jobs/train_rm.py --config configs/tiny.yaml --kind sorm
    python jobs/train_rm.py --config configs/tiny.yaml --kind stepwise --data my_steps.parquet
    ray job submit --working-dir . -- python jobs/train_rm.py --config configs/tiny.yaml --kind sorm
"""

from glore_ray.cli import run_job
from glore_ray.stages.models import RM_KINDS, run_reward_model

if __name__ == "__main__":
    def arguments(parser):
        parser.add_argument("--kind", required=True, choices=RM_KINDS)
        parser.add_argument("--data", help="--kind stepwise: a .parquet/.jsonl/.json file, or a directory of .parquet")

    run_job(__doc__, lambda cfg, args: run_reward_model(cfg, args.kind, force=args.force, data=args.data),
            extra=arguments)
