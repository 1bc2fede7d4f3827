"""Stage sorm_labels: SORM step labels from verification rollouts (efficient scheduler or naive), post-processed.

    python jobs/sorm_labels.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/sorm_labels.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.labels import run_sorm_labels

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_sorm_labels(cfg, force=args.force))
