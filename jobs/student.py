"""Stage student: SFT then Expert Iteration; prints the per-round Table 5 and writes rounds.json.

    python jobs/student.py --config configs/tiny.yaml
    ray job submit --working-dir . -- python jobs/student.py --config configs/tiny.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.student import run_student

if __name__ == "__main__":
    run_job(__doc__, lambda cfg, args: run_student(cfg, force=args.force))
