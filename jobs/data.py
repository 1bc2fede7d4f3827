"""Stage data: write the train/test question tables.

    python jobs/data.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/data.py --config configs/gsm8k_llama2_7b.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.data import run_data

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_data(cfg, force=args.force), needs_ray=False)
