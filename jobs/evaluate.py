"""Stage evaluate: Tables 1-3, Figures 3-4, App. D, and the Markdown report.

    python jobs/evaluate.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/evaluate.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.evaluate import run_evaluate

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_evaluate(cfg, force=args.force))
