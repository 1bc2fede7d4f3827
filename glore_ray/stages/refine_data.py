"""Stage ``refine_data``: global pairs and local triples (paper 3.1 step 3)."""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage, read_table, require_done
from glore_ray.config import Config
from glore_ray.labeling.refine_pairs import global_pairs, local_triples
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
    return stage.finish({"global": len(pairs), "local": len(triples)},
                        extra={"global_report": pair_report.__dict__, "local_report": triple_report.__dict__})
