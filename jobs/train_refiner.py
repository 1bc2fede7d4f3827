"""Stage refiners/<kind>: train the global or the local refiner, or the App. J value refiner.

    python jobs/train_refiner.py --config configs/tiny.yaml --kind local
    ray job submit --working-dir . -- python jobs/train_refiner.py --config configs/tiny.yaml --kind local
    python jobs/train_refiner.py --config configs/tiny.yaml --kind value refine.value_refinement=true
"""

from glore_ray.cli import run_job
from glore_ray.stages.models import REFINER_KINDS, run_refiner

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_refiner(cfg, args.kind, force=args.force),
            extra=lambda p: p.add_argument("--kind", required=True, choices=REFINER_KINDS))
