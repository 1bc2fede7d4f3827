"""Rollout throughput: the Ray Data path vs the same backend called directly, and batching's gain.

    .venv/bin/python bench/rollouts.py [--questions 96,512] [--k 16] [--max-new-tokens 48] [--repeats 2]

One run measures, on the same requests (a tiny-world model, random init, so every rollout runs to
max_new_tokens and all paths do identical work):
  direct   HFGenerator.generate in this process (1 torch thread), via sampler.generate_rows
  ray x1   sample_to_stage with one generator actor (1 CPU)
  ray x2   sample_to_stage with two actors on the 2 cores
  naive    HFGenerator with batch_size=1 (one sequence at a time) on a subset, vs batched on it
  reserved direct with HFGenerator(reserve_cache=True), the KV cache the service decodes into
           (room reserved, written in place), against direct's cache that grows by concatenation
Ray rows report wall time (actor start-up included), steady state (in-actor sampling time) and
the fixed cost one call adds (wall - sampling). Two workload sizes by default: 96 questions x 16
(~70k tokens, the size of one SORM verification wave) and 512 x 16 (~390k tokens, the size of one
tiny-world EI round or ORM sampling call), since a fixed cost weighs on small calls only.
Prints a table; writes bench/results/rollouts.json. Timings on shared 2-core machines are noisy:
medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from glore_ray.artifacts import Stage
from glore_ray.config import ModelConfig, RolloutConfig, RunConfig
from glore_ray.models.tiny import build_tiny_lm
from glore_ray.models.tokenizer import train_tokenizer
from glore_ray.rollout.engine import RolloutRequest
from glore_ray.rollout.hf_engine import HFGenerator
from glore_ray.rollout.ray_setup import init_ray
from glore_ray.rollout.sampler import generate_rows, sample_to_stage
from glore_ray.tasks.tiny_world import generate_problems

RESULTS = Path(__file__).parent / "results" / "rollouts.json"


def build_model(root: Path, n: int) -> tuple[str, list]:
    problems = generate_problems(max(n, 200), seed=0, split="train")
    tok = train_tokenizer([f"Q: {p.question}\nA: {p.reference}" for p in problems], vocab_size=384)
    model = build_tiny_lm(ModelConfig(), tok)  # the embedded default shape (4 x 128)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return str(root / "model"), problems


def direct(model_dir, requests, max_new, batch_size, reserve_cache=False) -> dict:
    """The backend in this process; loading the model is timed, as the Ray path's actors load it too."""
    t0 = time.perf_counter()
    gen = HFGenerator(model_dir, device="cpu", batch_size=batch_size, reserve_cache=reserve_cache)
    rows = generate_rows(gen, requests, max_new, 1.0, 1.0, base_seed=0)
    return _rates(len(rows), sum(r["num_tokens"] for r in rows), time.perf_counter() - t0)


def via_ray(model_dir, requests, max_new, actors, shard_rows, batch_size, root) -> dict:
    cfg = RolloutConfig(num_actors=actors, cpus_per_actor=1.0, shard_rows=shard_rows, batch_size=batch_size,
                        device="cpu", temperature=1.0)
    stage = Stage(tempfile.mkdtemp(dir=root), "bench", digest="bench")
    s = sample_to_stage(requests, stage, "rollouts", model_dir, cfg, max_new_tokens=max_new, base_seed=0)
    out = _rates(s.rows, s.tokens, s.seconds)
    out["steady_tokens_per_s"] = s.tokens / s.actor_seconds * actors if s.actor_seconds else 0.0
    # What the Ray path adds once per call: plan, actor start-up (process, imports, model load), drain.
    out["fixed_overhead_s"] = round(s.seconds - s.actor_seconds / actors, 2)
    return out


def _rates(rows, tokens, seconds) -> dict:
    return {"rows": rows, "tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": tokens / seconds,
            "rollouts_per_s": rows / seconds}


def _median(runs: list[dict]) -> dict:
    return {k: (statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k])
            for k in runs[0]}


def measure(model_dir, problems, n_questions, args, root) -> dict:
    requests = [RolloutRequest(p.id, f"Q: {p.question}\nA: ", n=args.k) for p in problems[:n_questions]]
    shard_rows = max(1, n_questions // 4)  # 4 shards: 2 actors both get work
    m, b = args.max_new_tokens, args.batch_size
    runs = {"direct": [], "ray_1_actor": [], "ray_2_actors": [], "batched": [], "naive": [], "reserved": []}
    for _ in range(args.repeats):
        runs["direct"].append(direct(model_dir, requests, m, b))
        runs["ray_1_actor"].append(via_ray(model_dir, requests, m, 1, shard_rows, b, root))
        runs["ray_2_actors"].append(via_ray(model_dir, requests, m, 2, shard_rows, b, root))
        few = requests[: args.naive_questions]
        runs["batched"].append(direct(model_dir, few, m, b))
        runs["naive"].append(direct(model_dir, few, m, 1))
        runs["reserved"].append(direct(model_dir, requests, m, b, reserve_cache=True))
    med = {k: _median(v) for k, v in runs.items()}
    ratios = {
        "ray1_vs_direct_wall": med["ray_1_actor"]["tokens_per_s"] / med["direct"]["tokens_per_s"],
        "ray1_vs_direct_steady": med["ray_1_actor"]["steady_tokens_per_s"] / med["direct"]["tokens_per_s"],
        "ray2_vs_direct_wall": med["ray_2_actors"]["tokens_per_s"] / med["direct"]["tokens_per_s"],
        "batched_vs_naive": med["batched"]["tokens_per_s"] / med["naive"]["tokens_per_s"],
        "reserved_vs_growing_cache": med["reserved"]["tokens_per_s"] / med["direct"]["tokens_per_s"],
    }
    print(f"\n{n_questions} questions x {args.k} samples x {m} tokens (medians of {args.repeats})")
    print(f"{'path':<14}{'rows':>7}{'tokens':>9}{'seconds':>9}{'tok/s':>9}{'rollouts/s':>12}{'steady tok/s':>14}"
          f"{'fixed s':>9}")
    for name, r in med.items():
        steady = f"{r['steady_tokens_per_s']:.0f}" if "steady_tokens_per_s" in r else ""
        fixed = f"{r['fixed_overhead_s']:.1f}" if "fixed_overhead_s" in r else ""
        print(f"{name:<14}{r['rows']:>7}{r['tokens']:>9}{r['seconds']:>9.2f}{r['tokens_per_s']:>9.0f}"
              f"{r['rollouts_per_s']:>12.1f}{steady:>14}{fixed:>9}")
    for name, value in ratios.items():
        print(f"{name:<28}{value:.2f}")
    return {"median": med, "ratios": ratios, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", default="96,512", help="workload sizes (questions), comma-separated")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-questions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(q) for q in str(args.questions).split(",")]
    torch.set_num_threads(1)  # as one actor gets: the comparison is per core
    root = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    model_dir, problems = build_model(root, max(sizes))
    init_ray(RunConfig(num_cpus=2), include_dashboard=False, log_to_driver=False)
    results = {str(n): measure(model_dir, problems, n, args, root) for n in sizes}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "by_questions": results}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
