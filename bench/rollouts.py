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

``--backends hf,vllm`` (run it with vLLM's environment, ``make vllm-env``: ``.venv-vllm/bin/python
bench/rollouts.py --backends hf,vllm``) adds, on the same requests in the same run:
  vllm direct        VLLMGenerator in this process (prefix caching on), engine start-up timed
  vllm no cache      the same with prefix caching off
  vllm ray x1 / x2   sample_to_stage with rollout.backend=vllm, one and two vLLM actors
and a SORM verification workload (K continuations of every step prefix of each reference
solution: shared prefixes) through HF direct and vLLM direct with prefix caching on and off.
vLLM rows report wall time (start-up included) and steady state (generation only): a vLLM engine
takes tens of seconds to start on a CPU, which a real run pays once per actor, not per call.
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
    """HFGenerator in this process; loading the model is timed, as the Ray path's actors load it too."""
    return _timed(lambda: HFGenerator(model_dir, device="cpu", batch_size=batch_size, reserve_cache=reserve_cache),
                  requests, max_new)


def vllm_direct(model_dir, requests, max_new, prefix_caching=True) -> dict:
    """VLLMGenerator in this process; its engine (a process of its own) ends with it."""
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    return _timed(lambda: VLLMGenerator(model_dir, RolloutConfig(backend="vllm", prefix_caching=prefix_caching)),
                  requests, max_new)


def _timed(make_generator, requests, max_new) -> dict:
    """Rates of one generator built and run in this process: wall (start-up included), steady
    (generation only) and the start-up itself; the generator is dropped before returning."""
    import gc

    t0 = time.perf_counter()
    gen = make_generator()
    loaded = time.perf_counter()
    rows = generate_rows(gen, requests, max_new, 1.0, 1.0, base_seed=0)
    done = time.perf_counter()
    del gen
    gc.collect()
    out = _rates(len(rows), sum(r["num_tokens"] for r in rows), done - t0)
    out["steady_tokens_per_s"] = out["tokens"] / (done - loaded)
    out["fixed_overhead_s"] = round(loaded - t0, 2)
    out["texts"] = texts_digest(rows)
    return out


def texts_digest(rows: list[dict]) -> str:
    """One hash of every sample's text, by its identity: equal iff two runs wrote the same texts."""
    import hashlib

    keyed = sorted((r["question_id"], r["prefix_index"], r["sample_index"], r["text"]) for r in rows)
    return hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16]


def sorm_requests(problems, n_questions: int, k: int) -> list[RolloutRequest]:
    """K verification rollouts from every non-final step prefix of each reference solution."""
    out = []
    for p in problems[:n_questions]:
        steps = p.reference.splitlines()[:-1]  # the answer line is no prefix
        for i in range(len(steps)):
            out.append(RolloutRequest(p.id, f"Q: {p.question}\nA: ", prefix="".join(s + "\n" for s in steps[: i + 1]),
                                      prefix_index=i, n=k))
    return out


def measure_vllm(model_dir, problems, n_questions, args, root) -> dict:
    """vLLM beside HF on the EI-sized call and on a SORM verification workload, one run."""
    requests = [RolloutRequest(p.id, f"Q: {p.question}\nA: ", n=args.k) for p in problems[:n_questions]]
    sorm = sorm_requests(problems, n_questions, 8)
    shard_rows = max(1, n_questions // 4)
    m, b = args.max_new_tokens, args.batch_size
    runs = {k: [] for k in ("hf_direct", "vllm_direct", "vllm_no_cache", "vllm_ray_1_actor", "vllm_ray_2_actors",
                            "sorm_hf_direct", "sorm_vllm", "sorm_vllm_no_cache")}
    for _ in range(args.repeats):
        runs["hf_direct"].append(direct(model_dir, requests, m, b))
        runs["vllm_direct"].append(vllm_direct(model_dir, requests, m))
        runs["vllm_no_cache"].append(vllm_direct(model_dir, requests, m, prefix_caching=False))
        runs["vllm_ray_1_actor"].append(via_ray(model_dir, requests, m, 1, shard_rows, b, root, backend="vllm"))
        runs["vllm_ray_2_actors"].append(via_ray(model_dir, requests, m, 2, shard_rows, b, root, backend="vllm"))
        runs["sorm_hf_direct"].append(direct(model_dir, sorm, m, b))
        runs["sorm_vllm"].append(vllm_direct(model_dir, sorm, m))
        runs["sorm_vllm_no_cache"].append(vllm_direct(model_dir, sorm, m, prefix_caching=False))
    med = {k: _median(v) for k, v in runs.items()}
    # Prefix caching must not change a text (config.RESOURCE_FIELDS leaves it out of stage digests).
    same = {name: len({r["texts"] for r in runs[on] + runs[off]}) == 1
            for name, on, off in (("ei", "vllm_direct", "vllm_no_cache"), ("sorm", "sorm_vllm", "sorm_vllm_no_cache"))}
    steady = {k: r["steady_tokens_per_s"] for k, r in med.items()}
    ratios = {
        "vllm_vs_hf_steady": steady["vllm_direct"] / steady["hf_direct"],
        "vllm_vs_hf_wall": med["vllm_direct"]["tokens_per_s"] / med["hf_direct"]["tokens_per_s"],
        "vllm_prefix_cache_on_vs_off_steady": steady["vllm_direct"] / steady["vllm_no_cache"],
        "vllm_ray1_vs_direct_steady": steady["vllm_ray_1_actor"] / steady["vllm_direct"],
        "vllm_ray1_vs_direct_wall": med["vllm_ray_1_actor"]["tokens_per_s"] / med["vllm_direct"]["tokens_per_s"],
        "vllm_ray2_vs_direct_wall": med["vllm_ray_2_actors"]["tokens_per_s"] / med["vllm_direct"]["tokens_per_s"],
        "sorm_vllm_vs_hf_steady": steady["sorm_vllm"] / steady["sorm_hf_direct"],
        "sorm_prefix_cache_on_vs_off_steady": steady["sorm_vllm"] / steady["sorm_vllm_no_cache"],
    }
    print(f"\nvLLM beside HF: {n_questions} questions x {args.k} samples, and {len(sorm)} SORM prefixes x 8 "
          f"(x {m} tokens; medians of {args.repeats})")
    _print_table(med)
    for name, value in ratios.items():
        print(f"{name:<36}{value:.2f}")
    print(f"texts identical with prefix caching on and off: EI {same['ei']}, SORM {same['sorm']}")
    return {"median": med, "ratios": ratios, "same_texts_cache_on_off": same, "runs": runs}


def via_ray(model_dir, requests, max_new, actors, shard_rows, batch_size, root, backend="hf") -> dict:
    cfg = RolloutConfig(num_actors=actors, cpus_per_actor=1.0, shard_rows=shard_rows, batch_size=batch_size,
                        device="cpu", temperature=1.0, backend=backend)
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
    _print_table(med)
    for name, value in ratios.items():
        print(f"{name:<28}{value:.2f}")
    return {"median": med, "ratios": ratios, "runs": runs}


def _print_table(med: dict) -> None:
    print(f"{'path':<20}{'rows':>7}{'tokens':>9}{'seconds':>9}{'tok/s':>9}{'rollouts/s':>12}{'steady tok/s':>14}"
          f"{'fixed s':>9}")
    for name, r in med.items():
        steady = f"{r['steady_tokens_per_s']:.0f}" if "steady_tokens_per_s" in r else ""
        fixed = f"{r['fixed_overhead_s']:.1f}" if "fixed_overhead_s" in r else ""
        print(f"{name:<20}{r['rows']:>7}{r['tokens']:>9}{r['seconds']:>9.2f}{r['tokens_per_s']:>9.0f}"
              f"{r['rollouts_per_s']:>12.1f}{steady:>14}{fixed:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", default="96,512", help="workload sizes (questions), comma-separated")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-questions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backends", default="hf", help="hf, or hf,vllm (vLLM rows beside HF; needs vLLM)")
    args = parser.parse_args()
    sizes = [int(q) for q in str(args.questions).split(",")]
    backends = set(args.backends.split(","))
    if not backends <= {"hf", "vllm"} or "hf" not in backends:
        parser.error(f"--backends: hf or hf,vllm, got {args.backends!r}")
    torch.set_num_threads(1)  # as one actor gets: the comparison is per core
    root = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    model_dir, problems = build_model(root, max(sizes))  # heads of 32: a size vLLM's CPU attention takes
    init_ray(RunConfig(num_cpus=2), include_dashboard=False, log_to_driver=False)
    results = {str(n): measure(model_dir, problems, n, args, root) for n in sizes}
    out = {"args": vars(args), "by_questions": results}
    if "vllm" in backends:
        out["vllm_by_questions"] = {str(n): measure_vllm(model_dir, problems, n, args, root) for n in sizes}
    path = RESULTS.with_name("rollouts_vllm.json") if "vllm" in backends else RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
