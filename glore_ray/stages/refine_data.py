"""Stage ``refine_data``: global pairs and local triples (paper 3.1 step 3), and with
``refine.value_refinement`` the value-refinement rows of paper App. J."""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage, read_table, require_done
from glore_ray.config import Config
from glore_ray.labeling.refine_pairs import global_pairs, local_triples, value_triples
from glore_ray.stages.labels import with_question

NAME = "refine_data"


def run_refine_data(cfg: Config, force: bool = False) -> dict:
    stage = Stage(cfg.run.run_dir, NAME, cfg.digest("refine", "labels", "run.seed"), force)
    if stage.done:
        return stage.manifest
    run = Path(cfg.run.run_dir)
    require_done(run, "orm_data")
    require_done(run, "sorm_labels")
    from glore_ray.stages.data import questions

    samples = with_question(read_table(run / "orm_data" / "samples"), questions(cfg, "train"))
    pairs, pair_report = global_pairs(samples, cfg.refine.max_pairs_per_question, cfg.run.seed)
    labels = read_table(run / "sorm_labels" / "labels_train")  # before balancing: 0 means a real error
    triples, triple_report = local_triples(labels, cfg.refine.max_triples_per_question, cfg.run.seed)
    stage.write_table("global", pairs)
    stage.write_table("local", triples)
    counts = {"global": len(pairs), "local": len(triples)}
    extra = {"global_report": pair_report.__dict__, "local_report": triple_report.__dict__}
    if cfg.refine.value_refinement:
        # App. J reuses the SORM data: the train split's label rows and every verifying rollout.
        rollouts = read_table(run / "sorm_labels" / "rollouts_train")
        value, value_report = value_triples(labels, rollouts, cfg.refine.max_triples_per_question, cfg.run.seed)
        stage.write_table("value", value)
        counts |= {"value": len(value), "value_incorrect_solutions": sum(not r["correct"] for r in labels)}
        extra["value_report"] = value_report.__dict__
    return stage.finish(counts, extra=extra)
