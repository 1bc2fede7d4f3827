"""Stage orm_data: K student samples per train question, ORM and balanced-ORM step labels, test drafts.

    python jobs/orm_data.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/orm_data.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.labels import run_orm_data

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_orm_data(cfg, force=args.force))
