"""The paper's claims over seeds: the whole main job at each seed, and every claim per seed with mean ± sd.

Runs the pipeline (jobs/pipeline.py's stages) once per seed, each in its own resumable run
directory ``runs/fidelity/<name>/seed_<s>``, and prints per seed and as mean ± sd over the seeds
finished so far (glore_ray/claims.py):

- the student: SFT maj@1 / pass@K, the EI change, right answer with wrong steps, SORM label agreement;
- every reward model's final AUC, step AUC (pooled and within position) and first-error F1, beside
  the student's log-prob baseline and the oracle control where the run trains it;
- Figure 4 (greedy, Bo3, ORM rerank, oracle), Table 3 and each refiner's fix and damage rates;
- which of the faithful world's targets and the paper's claims hold on every seed.

A whole pipeline takes minutes to tens of minutes a seed, so run one seed per command if need be:
a killed bench resumes where it stopped (each stage resumes), and ``--no-run`` prints the table of
the seeds finished so far without running anything. A pretrained base (pretrain.enabled) does not
depend on the seed: the seeds share one. Writes ``runs/fidelity/<name>/fidelity.json``.

    .venv/bin/python bench/fidelity.py --name tiny --seeds 0
    .venv/bin/python bench/fidelity.py --name tiny --seeds 1,2
    .venv/bin/python bench/fidelity.py --name tiny --no-run
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glore_ray.artifacts import MANIFEST  # noqa: E402
from glore_ray.claims import over_seeds, run_claims  # noqa: E402
from glore_ray.config import load_config  # noqa: E402


def seed_dir(out_dir: Path, seed: int) -> Path:
    return out_dir / f"seed_{seed}"


def finished_seeds(out_dir: Path) -> list[int]:
    """Seeds whose evaluation finished (a seed killed mid-pipeline is not read as complete)."""
    done = (p for p in out_dir.glob("seed_*") if (p / "evaluate" / MANIFEST).exists())
    return sorted(int(p.name.removeprefix("seed_")) for p in done)


def print_table(table: dict) -> None:
    claims, checks = table["claims"], table["checks"]
    if not claims:
        print("no seed finished yet")
        return
    seeds = sorted(next(iter(claims.values()))["seeds"])
    width = max(map(len, claims)) + 2
    print(f"{'claim':<{width}}" + "".join(f"{f'seed {s}':>10}" for s in seeds) + f"{'mean ± sd':>18}")
    for name, row in claims.items():
        cells = "".join(f"{_f(row['seeds'][s]):>10}" for s in seeds)
        spread = f"{_f(row['mean'])} ± {_f(row['sd'])}" if row["sd"] is not None else _f(row["mean"])
        print(f"{name:<{width}}{cells}{spread:>18}")
    print("\nchecks (issue): per seed, and whether it holds on every seed that measured it")
    for name, c in checks.items():
        per_seed = " ".join(f"{s}:{_verdict(c['seeds'][s])}" for s in seeds)
        print(f"  [{c['issue']}] {name}: {per_seed} -> {_verdict(c['holds'])}")


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _verdict(v) -> str:
    return "n/a" if v is None else "yes" if v else "NO"


def main(argv: list[str] | None = None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--name", required=True, help="the configuration's name: <root>/<name>/")
    parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1, 2],
                        help="comma-separated seeds to run, e.g. 0,1,2 (the default)")
    parser.add_argument("--root", default="runs/fidelity")
    parser.add_argument("--no-run", action="store_true", help="only print the seeds finished so far")
    parser.add_argument("overrides", nargs="*", help="dotted overrides on top of the config")
    args = parser.parse_args(argv)
    out_dir = Path(args.root) / args.name
    if not args.no_run:
        from glore_ray.rollout.ray_setup import init_ray
        from glore_ray.stages.pipeline import run_pipeline

        configs = [load_config(args.config, [*args.overrides, f"run.seed={s}", f"run.run_dir={seed_dir(out_dir, s)}",
                                             f"pretrain.shared_dir={out_dir}"]) for s in args.seeds]
        init_ray(configs[0].run, log_to_driver=False)
        for cfg in configs:
            t0 = time.time()
            run_pipeline(cfg)
            print(f"seed {cfg.run.seed}: pipeline done in {time.time() - t0:.0f}s (this command)", flush=True)
    seeds = finished_seeds(out_dir)
    table = over_seeds({s: run_claims(seed_dir(out_dir, s)) for s in seeds})
    if seeds:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fidelity.json").write_text(json.dumps(
            {"name": args.name, "config": args.config, "overrides": args.overrides, "seeds": seeds, **table}, indent=2))
    print_table(table)
    return table


if __name__ == "__main__":
    main()
