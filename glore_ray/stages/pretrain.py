"""Stage ``pretrain`` (tiny world, ``pretrain.enabled``): the base model, pretrained on bare arithmetic.

A real student is fine-tuned from a pretrained base (paper 3.1 step 1); the tiny world's was random
init, so a seed's SFT had to learn arithmetic and reading at once and the seed decided whether the
arithmetic was learnt (docs/faithful-world.md). This stage trains the base once, with
``pretrain.seed`` (never ``run.seed``), on the world's own worked problems (or their solutions
alone, or bare equations: ``pretrain.corpus``; glore_ray/tasks/arithmetic.py), with a share of the
world's facts seen only ``pretrain.rare_sightings`` times, and measures what it knows. Layout under ``<pretrain.shared_dir or run_dir>/pretrain/``::

    init/         tokenizer (the corpus plus the world's word problems) + random-init Llama
    model/        the pretrained base (HF format): what the student stage fine-tunes
    probes.json   greedy accuracy per step kind and for the known and rare facts

Runs that differ only in ``run.seed`` share one directory through ``pretrain.shared_dir``.
"""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage
from glore_ray.config import Config

NAME = "pretrain"
# run.seed is left out on purpose: the base is the same for every student seed.
DIGEST = ("data.tiny_world", "model", "pretrain", "training.pretrain")
PROBE_SOLUTIONS = 200  # held-out solutions whose steps probe the base (~2,000 steps)


def stage_root(cfg: Config) -> str:
    return cfg.pretrain.shared_dir or cfg.run.run_dir


def run_pretrain(cfg: Config, force: bool = False) -> dict:
    """Train (or reuse) the base; the manifest names its checkpoint and probe accuracies."""
    stage = Stage(stage_root(cfg), NAME, cfg.digest(*DIGEST), force)
    if stage.done:
        return stage.manifest
    from glore_ray.tasks.arithmetic import pretrain_corpus, solution_corpus, split_facts
    from glore_ray.training.trainer import fine_tune

    p, world = cfg.pretrain, base_world(cfg)
    if p.corpus == "equations":
        corpus = [("", text) for text in pretrain_corpus(world, p.rows, p.lines_per_row, p.known_share,
                                                         p.rare_sightings, p.seed)]
    else:
        corpus = solution_corpus(world, p.rows, p.known_share, p.rare_sightings, p.seed, p.corpus == "problems")
    known, rare = split_facts(world, p.known_share, p.seed) if "*" in world.ops else ([], [])
    if p.slipped_share:
        from glore_ray.tasks.slipped import slipped_corpus

        corpus += slipped_corpus(world, round(p.slipped_share * p.rows), p.seed, frozenset(rare))
    init = _init_model(cfg, stage, [prompt + target for prompt, target in corpus])
    rows = packed_rows(corpus, p.problems_per_row, p.seed)
    result = fine_tune("lm", rows, init, str(stage.path("model")), cfg.training.pretrain, seed=p.seed)
    # Probed on the student's world: what the student inherits, whatever world the base read.
    probes = probe_accuracy(result.checkpoint, cfg.data.tiny_world, rare, p.seed, p.corpus == "problems")
    stage.write_json("probes.json", probes)
    counts = {"rows": len(corpus), **({"packed_rows": len(rows)} if p.problems_per_row > 1 else {}),
              "facts_known": len(known), "facts_rare": len(rare), "train_loss": result.final_loss,
              "steps": result.steps, **{f"probe_{k}": v["accuracy"] for k, v in probes.items()}}
    print("pretrain: " + ", ".join(f"{k} {v['accuracy']:.3f} ({v['n']})" for k, v in probes.items()))
    return stage.finish(counts, inputs={"seed": p.seed}, extra={"checkpoint": result.checkpoint})


def packed_rows(corpus: list[tuple[str, str]], per_row: int, seed: int) -> list[dict]:
    """The corpus as lm rows of ``per_row`` (prompt, target) pairs each, drawn in a seeded order so
    a row mixes whole problems and slipped ones; one pair a row (per_row 1) keeps the corpus as it is.

    >>> packed_rows([("a", "1"), ("b", "2"), ("c", "3")], 1, 0)[0]
    {'prompt': 'a', 'target': '1'}
    >>> rows = packed_rows([("a", "1"), ("b", "2"), ("c", "3")], 2, 0)
    >>> len(rows), sorted(len(r["then"]) for r in rows)
    (2, [0, 1])
    """
    if per_row == 1:
        return [{"prompt": prompt, "target": target} for prompt, target in corpus]
    import random

    order = list(range(len(corpus)))
    random.Random(f"pretrain-pack/{seed}").shuffle(order)
    rows = []
    for start in range(0, len(order), per_row):
        (prompt, target), *rest = (corpus[i] for i in order[start:start + per_row])
        rows.append({"prompt": prompt, "target": target, "then": [{"prompt": p, "target": t} for p, t in rest]})
    return rows


def base_world(cfg: Config):
    """The world the base pretrains on: the student's, with ``pretrain.min_ops..max_ops``
    operations where they are set."""
    import dataclasses

    world, p = cfg.data.tiny_world, cfg.pretrain
    return world if p.min_ops is None else dataclasses.replace(world, min_ops=p.min_ops, max_ops=p.max_ops)


def base_checkpoint(cfg: Config) -> str:
    """The pretrained base's checkpoint, training it first if need be."""
    return str(Path(run_pretrain(cfg)["checkpoint"]))


def _init_model(cfg: Config, stage: Stage, corpus: list[str]) -> str:
    """Tokenizer and random-init model, saved once (complete or absent). The tokenizer also reads
    word problems of the world (drawn with the base's seed, never trained on), so the student's
    prompts tokenize as well as the arithmetic does."""
    path = stage.path("init")
    if (path / "config.json").exists():
        return str(path)
    from glore_ray.stages.common import save_tiny_init
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.tiny_world import generate_problems

    vocab = generate_problems(2000, seed=cfg.pretrain.seed, split="pretrain-vocab", config=cfg.data.tiny_world)
    texts = corpus + [student_prompt(q.question) + q.reference for q in vocab]
    return save_tiny_init(path, texts, cfg.model, cfg.pretrain.seed)


def probe_accuracy(checkpoint: str, world, rare, seed: int, with_question: bool) -> dict:
    """Greedy accuracy of the base on each kind of step (:func:`~glore_ray.tasks.arithmetic.step_probes`)
    of held-out solutions of the world, given the solution so far: what the student inherits."""
    from collections import defaultdict

    from glore_ray.rollout.engine import RolloutRequest
    from glore_ray.rollout.hf_engine import HFGenerator
    from glore_ray.tasks.arithmetic import step_probes
    from glore_ray.tasks.tiny_world import generate_problems

    probes = [probe for problem in generate_problems(PROBE_SOLUTIONS, seed, "pretrain-probe", world)
              for probe in step_probes(problem, world, set(rare), with_question)]
    requests = [RolloutRequest(f"probe-{i}", prompt, greedy=True) for i, (_, prompt, _) in enumerate(probes)]
    texts = [c[0].text for c in HFGenerator(checkpoint, batch_size=128).generate(requests, max_new_tokens=12)]
    tally = defaultdict(lambda: [0, 0])
    for (kind, _, result), text in zip(probes, texts, strict=True):
        tally[kind][0] += text.split("\n")[0].strip() == result
        tally[kind][1] += 1
    return {kind: {"n": n, "accuracy": round(right / n, 4)} for kind, (right, n) in sorted(tally.items())}
