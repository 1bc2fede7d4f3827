"""Stage refine_data: global pairs and local [BAD] triples for the refiners.

    python jobs/refine_data.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/refine_data.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.refine_data import run_refine_data

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_refine_data(cfg, force=args.force), needs_ray=False)
