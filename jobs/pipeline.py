"""The main job: data -> student (SFT + EI) -> ORM data -> SORM labels -> reward models ->
refine data -> refiners -> evaluation (-> serve, with pipeline.serve=true), from one config;
resumable (re-run to resume).

    python jobs/pipeline.py --config configs/tiny.yaml
    python jobs/pipeline.py --config configs/tiny.yaml pipeline.serve=true   # then serve over HTTP
    ray job submit --working-dir . -- python jobs/pipeline.py --config configs/gsm8k_llama2_7b.yaml
"""

from glore_ray.cli import run_job
from glore_ray.stages.pipeline import run_pipeline


def pipeline_then_serve(cfg, args) -> dict:
    summary = run_pipeline(cfg)
    if cfg.pipeline.serve:
        from glore_ray.cli import print_summary
        from glore_ray.serving.launch import run_service

        print_summary("GLoRe pipeline", summary)
        print(f"serving on http://{cfg.serve.host}:{cfg.serve.port}{cfg.serve.route_prefix} (Ctrl-C to stop)",
              flush=True)
        run_service(cfg, blocking=True)
    return summary


if __name__ == "__main__":
    run_job(__doc__, pipeline_then_serve)
