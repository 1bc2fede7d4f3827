"""Stage sorm_labels: SORM step labels from verification rollouts (efficient scheduler or naive),
post-processed; with --soft, stage sorm_soft_labels: soft labels (the share of a prefix's K rollouts
that succeed) for the same solutions, which reward model sorm_soft trains on.

    python jobs/sorm_labels.py --config configs/tiny.yaml
    python jobs/sorm_labels.py --config configs/tiny.yaml --soft
    ray job submit --working-dir . -- python jobs/sorm_labels.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.labels import run_sorm_labels, run_sorm_soft_labels

if __name__ == "__main__":
    def arguments(parser):
        parser.add_argument("--soft", action="store_true",
                            help="soft labels for the solutions sorm_labels labelled (run that stage first)")

    run_job(__doc__, lambda cfg, args: (run_sorm_soft_labels if args.soft else run_sorm_labels)(cfg, force=args.force),
            extra=arguments)
