"""Stage ``refine_data``: global pairs and local triples (paper 3.1 step 3), and with
``refine.value_refinement`` the value-refinement rows of paper App. J."""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage, StageError, stage_table
from glore_ray.config import Config
from glore_ray.labeling.refine_pairs import global_pairs, local_triples, value_triples
from glore_ray.stages.labels import orm_table, sorm_table, with_question

NAME = "refine_data"


def run_refine_data(cfg: Config, force: bool = False) -> dict:
    stage = Stage(cfg.run.run_dir, NAME, cfg.digest("refine", "labels", "run.seed"), force)
    if stage.done:
        return stage.manifest
    run = cfg.run.run_dir
    from glore_ray.stages.data import questions

    samples = with_question(orm_table(run, "samples"), questions(cfg, "train"))
    pairs, pair_report = global_pairs(samples, cfg.refine.max_pairs_per_question, cfg.run.seed)
    labels = sorm_table(run, "labels_train")  # before balancing: 0 means a real error
    triples, triple_report = local_triples(labels, cfg.refine.max_triples_per_question, cfg.run.seed)
    stage.write_table("global", pairs)
    stage.write_table("local", triples)
    counts = {"global": len(pairs), "local": len(triples)}
    extra = {"global_report": pair_report.__dict__, "local_report": triple_report.__dict__}
    if cfg.refine.value_refinement:
        # App. J reuses the SORM data: the train split's label rows and every verifying rollout.
        rollouts = sorm_table(run, "rollouts_train")
        value, value_report = value_triples(labels, rollouts, cfg.refine.max_triples_per_question, cfg.run.seed)
        stage.write_table("value", value)
        counts |= {"value": len(value), "value_incorrect_solutions": sum(not r["correct"] for r in labels)}
        extra["value_report"] = value_report.__dict__
    return stage.finish(counts, extra=extra)


def refine_table(run_dir, kind: str) -> list[dict]:
    """The refiner ``kind``'s training rows (``global``, ``local``, ``value``) of a finished
    refine_data stage."""
    if kind == "value" and not (Path(run_dir) / NAME / kind).exists():
        raise StageError(f"{Path(run_dir) / NAME / kind}: missing; refine_data ran with refine.value_refinement off. "
                         "Re-run it (jobs/refine_data.py --force) with the option on")
    return stage_table(run_dir, NAME, kind)
