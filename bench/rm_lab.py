"""The reward-model lab: train one reward-model recipe on a finished run and score it beside the
run's own reward models and the student's log-prob baseline (docs/reward-models.md).

    # the run: the main job's config (and its overrides, --set); the variant: a name, a kind, overrides
    .venv/bin/python bench/rm_lab.py --variant orm_k16 --kind orm labels.orm_k=16
    .venv/bin/python bench/rm_lab.py --variant sorm_ep2 --kind sorm training.rm.epochs=2
    .venv/bin/python bench/rm_lab.py            # no variant: the table of every one scored so far

Each model is scored on the final student's greedy drafts of --questions extra held-out questions
(split ``lab``) against the tiny world's exact step labels. Printed per model: the rows it trained
on, training and scoring seconds, final AUC ± its standard error, step AUC pooled and within
position, and ProcessBench's first-error F1 (erroneous / clean). Variants train in
``<run>/lab/variants/<name>/`` through the main job's stages, sharing the run's finished stages
where the overrides leave them alone; scores and results are cached (``<run>/lab/``), so a
killed sweep resumes and a finished variant costs nothing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glore_ray.config import load_config  # noqa: E402

BASELINES = ("student_logprob", "run/orm", "run/sorm")


def print_lab(results: dict, n: int) -> None:
    rows = [(name, r) for name, r in results.items() if r["questions"] == n]
    if not rows:
        print(f"nothing scored on {n} lab questions yet")
        return
    drafts = rows[0][1]["drafts"]
    print(f"lab: {drafts} greedy drafts of {n} held-out questions; step columns against the exact oracle")
    print(f"{'model':<24} {'kind':<13} {'rows':>6} {'train s':>7} {'final AUC':>13} {'step AUC':>8} "
          f"{'in pos.':>7} {'F1 (err / clean)':>22}")
    order = {name: i for i, name in enumerate(BASELINES)}
    for name, r in sorted(rows, key=lambda item: (order.get(item[0], len(order)), item[0])):
        fe = r.get("first_error")
        f1 = f"{fe['f1']:.3f} ({fe['erroneous']:.3f} / {fe['clean']:.3f})" if fe else ""
        print(f"{name:<24} {r['kind']:<13} {_int(r.get('rows')):>6} {_int(r.get('train_seconds')):>7} "
              f"{r['final_auc']:.3f} ± {r['final_auc_se']:.3f} {r['step_auc_exact']:>8.3f} "
              f"{r['step_auc_exact_in_position']:>7.3f} {f1:>22}")


def _int(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"


def main(argv: list[str] | None = None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml", help="the finished run's config")
    parser.add_argument("--set", dest="run_overrides", action="append", default=[],
                        help="an override of the finished run (repeatable), e.g. --set run.seed=1")
    parser.add_argument("--variant", help="the variant's name: <run>/lab/variants/<name>/")
    parser.add_argument("--kind", default="orm", help="reward-model kind (stages/models.py RM_KINDS)")
    parser.add_argument("--questions", type=int, default=1000, help="held-out lab questions (default 1000)")
    parser.add_argument("overrides", nargs="*", help="the variant's dotted overrides, e.g. labels.orm_k=16")
    args = parser.parse_args(argv)
    if args.overrides and not args.variant:
        parser.error("overrides describe a variant: name it with --variant")
    run_cfg = load_config(args.config, args.run_overrides)

    from glore_ray.artifacts import StageError
    from glore_ray.rollout.ray_setup import init_ray
    from glore_ray.stages import lab
    from glore_ray.stages.common import student_checkpoint
    from glore_ray.stages.models import model_checkpoint

    init_ray(run_cfg.run, log_to_driver=False)
    drafts = lab.lab_drafts(run_cfg, args.questions)
    n = args.questions
    done = lab.lab_results(run_cfg)
    if done.get("student_logprob", {}).get("questions") != n:
        lab.score_variant(run_cfg, "student_logprob", student_checkpoint(run_cfg), drafts,
                          {"kind": "log-prob", "questions": n}, probabilities=False, logprob=True)
    for kind in ("orm", "sorm"):  # the run's own reward models, where its main job trained them
        try:
            path = model_checkpoint(run_cfg.run.run_dir, f"reward_models/{kind}")
        except StageError:  # not trained: the table goes without the row
            continue
        if done.get(f"run/{kind}", {}).get("questions") != n:
            manifest = json.loads((Path(run_cfg.run.run_dir) / "reward_models" / kind / "manifest.json").read_text())
            lab.score_variant(run_cfg, f"run/{kind}", path, drafts,
                              {"kind": kind, "questions": n, "rows": manifest["counts"]["rows"],
                               "train_seconds": manifest["seconds"], "seed": run_cfg.run.seed})
    if args.variant:
        var_cfg = lab.variant_config(args.config, args.run_overrides, args.variant, args.overrides)
        manifest = lab.train_variant(run_cfg, var_cfg, args.kind)
        lab.score_variant(run_cfg, args.variant, manifest["checkpoint"], drafts,
                          {"kind": args.kind, "overrides": args.overrides, "questions": n,
                           "rows": manifest["counts"]["rows"], "train_seconds": manifest["seconds"],
                           "seed": run_cfg.run.seed})
    results = lab.lab_results(run_cfg)
    print_lab(results, n)
    return results


if __name__ == "__main__":
    main()
