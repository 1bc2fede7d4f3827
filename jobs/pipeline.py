"""The main job: data -> student (SFT + EI) -> ORM data -> SORM labels -> reward models ->
refine data -> refiners -> evaluation, from one config; resumable (re-run to resume).

    python jobs/pipeline.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/pipeline.py --config configs/gsm8k_llama2_7b.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.pipeline import run_pipeline

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_pipeline(cfg))
