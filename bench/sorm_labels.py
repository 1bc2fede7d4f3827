"""SORM labelling cost: the paper's naive procedure, our efficient scheduler, OmegaPRM's /
EpicPRM's binary search (docs/architecture.md §5), and soft labels (every rollout of every
distinct prefix; compared as ``soft > 0``, which is the naive label under the same rollouts).

All run in this process on the same solutions with the same rollout seeds, through the same
HFGenerator; the table reports rollouts, generated tokens, wall time, the share of solutions
whose labels equal the naive procedure's and, in the tiny world, how often the step labels agree
with the exact oracle (a column no peer can measure). Two workloads:

- tiny: the tiny world, student samples from a trained student (``--student``; by default the
  final student of ``runs/tiny`` written by ``make pipeline``);
- gsm8k: GSM8K-format drafts (reference solutions of real GSM8K train questions with one step's
  result corrupted in half of them) verified by a tiny random-init model: the labels are
  meaningless, the counting is not.

    .venv/bin/python bench/sorm_labels.py [--student PATH] [--questions 60] [--k 8] [--config C overrides...]

``--backends hf,vllm`` (in vLLM's environment, ``make vllm-env``) labels the tiny workload's same
solutions again with every labeller verifying through a VLLMGenerator of the same student, and
prints each labeller's vLLM seconds against its HF seconds from the same run. vLLM samples with its
own seeded generator, so its rollouts, and so its labels, are not HF's; within vLLM the
efficient labels must still equal the naive ones (the "same as naive" column).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glore_ray.config import LabelConfig, ModelConfig  # noqa: E402
from glore_ray.labeling.scheduler import soft_labels, sorm_labels  # noqa: E402
from glore_ray.labeling.sorm import VerifyResult  # noqa: E402
from glore_ray.metrics import label_agreement  # noqa: E402
from glore_ray.rollout.engine import RolloutRequest  # noqa: E402
from glore_ray.rollout.hf_engine import HFGenerator  # noqa: E402
from glore_ray.rollout.sampler import generate_rows  # noqa: E402
from glore_ray.tasks.prompts import student_prompt  # noqa: E402


def verifier(generator: HFGenerator, max_new_tokens: int, seed: int):
    """The scheduler's verify callback: one continuation per request, seeded by its prefix key."""

    def verify(batch):
        requests = [RolloutRequest(v.question_id, v.prompt, prefix=v.prefix, prefix_index=0, answer=v.answer,
                                   seed_key=f"{v.seed_key}#{v.sample_index}") for v in batch]
        rows = generate_rows(generator, requests, max_new_tokens, temperature=1.0, base_seed=seed)
        return [VerifyResult(r["text"], r["correct"], r["num_tokens"]) for r in rows]

    return verify


def exact_lower_bound(naive_result) -> dict:
    """The fewest rollouts (and their tokens) that *any* procedure needs to prove the naive labels
    with post-processing rule (1), read off the naive run's own rollouts: nothing for a correct
    solution; for an incorrect one, all K rollouts of every prefix after its last positive prefix
    (a negative needs every sample to fail) and, at that positive prefix, the rollouts up to its
    first counting one; each distinct (question, prefix) once."""
    by_prefix: dict[str, dict[int, dict]] = {}  # the naive run rolls a shared prefix out once per solution
    for r in naive_result.rollouts:
        by_prefix.setdefault(r["prefix_key"], {})[r["sample_index"]] = r
    needed: dict[str, list[dict]] = {}
    for row in naive_result.rows:
        if row["correct"]:
            continue
        raw, keys = row["raw_labels"][:-1], row["prefix_keys"][:-1]
        last_positive = max((i for i, label in enumerate(raw) if label == 1), default=-1)
        for i in range(max(last_positive, 0), len(raw)):
            rollouts = [by_prefix[keys[i]][j] for j in sorted(by_prefix[keys[i]])]
            if i == last_positive:
                first = next(j for j, r in enumerate(rollouts) if r["counted"])
                rollouts = rollouts[: first + 1]
            needed[keys[i]] = rollouts
    return {"rollouts": sum(len(v) for v in needed.values()),
            "tokens": sum(r["num_tokens"] for v in needed.values() for r in v)}


def compare(samples, generator, k: int, max_new_tokens: int, chunks=(2,), exact=None) -> dict:
    """Naive vs the efficient scheduler at each ``sorm_chunk`` (rollouts per prefix per wave):
    chunk 1 stops a prefix at its first counting rollout exactly; larger chunks make fewer,
    larger waves for a few more rollouts; and the binary search at chunk 1. ``exact(row)``: the
    oracle's step labels of a label row, where the workload has an oracle."""
    runs = {}
    modes = [("naive", 1)] + [("efficient", c) for c in chunks] + [("binary", 1), ("soft", 1)]
    for mode, chunk in modes:
        config = LabelConfig(sorm_k=k, sorm_max_new_tokens=max_new_tokens, sorm_chunk=chunk,
                             scheduler="naive" if mode == "soft" else mode)
        label = soft_labels if mode == "soft" else sorm_labels  # soft: every rollout; compared as soft > 0
        t0 = time.perf_counter()
        result = label(samples, verifier(generator, max_new_tokens, seed=0), config)
        if mode == "naive":
            bound = exact_lower_bound(result)
        labels = [[int(y > 0) for y in r["labels"]] for r in result.rows]
        runs[mode if mode in ("naive", "soft") else f"{mode}_chunk{chunk}"] = {
            "seconds": time.perf_counter() - t0, "rollouts": result.stats.rollouts_requested,
            "tokens": result.stats.tokens_generated, "waves": result.stats.waves, "labels": labels,
            "oracle_agreement": (label_agreement(labels, [exact(r) for r in result.rows])["agreement"]
                                 if exact else None)}
    naive = runs["naive"]
    out = {"solutions": len(samples), "correct": sum(s["correct"] for s in samples),
           "naive_rollouts": naive["rollouts"], "naive_tokens": naive["tokens"],
           "naive_seconds": round(naive["seconds"], 2),
           "lower_bound_rollouts": bound["rollouts"], "lower_bound_tokens": bound["tokens"],
           "lower_bound_token_ratio": bound["tokens"] / max(1, naive["tokens"]),
           "naive_oracle_agreement": naive["oracle_agreement"]}
    for name, r in runs.items():
        if name == "naive":
            continue
        same = [a == b for a, b in zip(r["labels"], naive["labels"], strict=True)]
        out[name] = {"rollouts": r["rollouts"], "tokens": r["tokens"], "waves": r["waves"],
                     "seconds": round(r["seconds"], 2), "token_ratio": r["tokens"] / max(1, naive["tokens"]),
                     "rollout_ratio": r["rollouts"] / max(1, naive["rollouts"]),
                     "speedup": naive["seconds"] / max(1e-9, r["seconds"]),
                     "labels_identical": all(same), "same_as_naive": sum(same) / max(1, len(same)),
                     "oracle_agreement": r["oracle_agreement"]}
    return out


def tiny_workload(student: str, n_questions: int, samples_per_q: int, max_new_tokens: int, config: str,
                  overrides: list[str]):
    from glore_ray.config import load_config
    from glore_ray.tasks.tiny_oracle import exact_step_labels
    from glore_ray.tasks.tiny_world import generate_problems

    generator = HFGenerator(student, batch_size=128)
    world = load_config(config, overrides).data.tiny_world  # the world the student learned
    problems = generate_problems(n_questions, seed=123, split="bench", config=world)
    requests = [RolloutRequest(p.id, student_prompt(p.question), n=samples_per_q, answer=p.answer) for p in problems]
    rows = generate_rows(generator, requests, max_new_tokens, temperature=1.0, base_seed=1)
    by_id = {p.id: p for p in problems}
    samples = [{"question_id": r["question_id"], "question": by_id[r["question_id"]].question,
                "prompt": student_prompt(by_id[r["question_id"]].question),
                "text": r["text"], "correct": r["correct"], "answer": by_id[r["question_id"]].answer} for r in rows]
    return samples, generator, lambda row: exact_step_labels(by_id[row["question_id"]], row["solution"])


def gsm8k_workload(path: Path, n_questions: int):
    from glore_ray.models.tiny import build_tiny_lm
    from glore_ray.models.tokenizer import train_tokenizer
    from glore_ray.tasks.gsm8k import load_gsm8k
    from glore_ray.tasks.steps import split_steps, step_result

    rows, _ = load_gsm8k(path, "train")
    rows = rows[:n_questions]
    tokenizer = train_tokenizer([student_prompt(r["question"]) + r["reference"] for r in rows[:500]], 1024)
    model = build_tiny_lm(ModelConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, max_len=512), tokenizer)
    rng, samples = random.Random(0), []
    for r in rows:
        steps = split_steps(r["reference"])
        correct = rng.random() < 0.5
        if not correct:  # corrupt one intermediate result: the draft is wrong from that step on
            i = rng.randrange(len(steps) - 1)
            value = step_result(steps[i])
            steps[i] = steps[i].replace(value, str(int(float(value)) + 7), 1) if value else steps[i] + " 7"
            steps[-1] = "#### " + str(int(float(r["answer"])) + 7)
        samples.append({"question_id": r["id"], "question": r["question"], "prompt": student_prompt(r["question"]),
                        "text": "\n".join(steps),
                        "correct": correct, "answer": r["answer"]})
    return samples, HFGenerator(model, tokenizer, batch_size=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default=None, help="student checkpoint (default: runs/tiny's final student)")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--samples-per-question", type=int, default=4)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--chunks", default="1,2,8", help="efficient scheduler sorm_chunk values to compare")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tiny workload: rollout budget")
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"),
                        help="tiny workload: the config whose world the student learned")
    parser.add_argument("overrides", nargs="*", help="tiny workload: dotted overrides of that config's world")
    parser.add_argument("--gsm8k", default=str(ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--out", default=None, help="results JSON (default: bench/results/sorm_labels[_vllm].json)")
    parser.add_argument("--backends", default="hf", help="hf, or hf,vllm (the tiny workload again on vLLM)")
    args = parser.parse_args()
    if args.backends not in ("hf", "hf,vllm"):
        parser.error(f"--backends: hf or hf,vllm, got {args.backends!r}")
    vllm = args.backends == "hf,vllm"
    args.out = args.out or str(ROOT / "bench" / "results" / ("sorm_labels_vllm.json" if vllm else "sorm_labels.json"))

    import torch

    torch.set_num_threads(2)
    chunks = [int(c) for c in args.chunks.split(",")]
    results = {}
    student = args.student
    if student is None and (ROOT / "runs/tiny/student/final.json").exists():
        student = json.loads((ROOT / "runs/tiny/student/final.json").read_text())["checkpoint"]
    if student:
        samples, gen, exact = tiny_workload(student, args.questions, args.samples_per_question, args.max_new_tokens,
                                            args.config, args.overrides)
        results["tiny"] = compare(samples, gen, args.k, args.max_new_tokens, chunks, exact)
        if vllm:
            from glore_ray.config import RolloutConfig
            from glore_ray.rollout.vllm_engine import VLLMGenerator

            started = time.perf_counter()
            vllm_gen = VLLMGenerator(student, RolloutConfig(backend="vllm"))
            print(f"vLLM engine started in {time.perf_counter() - started:.1f}s (not in the seconds below)")
            results["tiny_vllm"] = compare(samples, vllm_gen, args.k, args.max_new_tokens, chunks, exact)
    else:
        print("tiny: skipped (no student: run `make pipeline` first or pass --student)")
    if Path(args.gsm8k).exists():
        samples, gen = gsm8k_workload(Path(args.gsm8k), args.questions)
        results["gsm8k_format"] = compare(samples, gen, args.k, 48, chunks)
    cols = ["rollouts", "tokens", "token_ratio", "waves", "seconds", "speedup", "same_as_naive", "oracle_agreement"]
    print("| workload | scheduler | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name, r in results.items():
        oracle = r["naive_oracle_agreement"]
        print(f"| {name} ({r['solutions']} solutions, {r['correct']} correct) | naive | {r['naive_rollouts']} | "
              f"{r['naive_tokens']} | 1.000 | - | {r['naive_seconds']} | 1.00 | 1.000 | "
              f"{'-' if oracle is None else f'{oracle:.3f}'} |")
        print(f"| {name} | exact lower bound | {r['lower_bound_rollouts']} | {r['lower_bound_tokens']} | "
              f"{r['lower_bound_token_ratio']:.3f} | - | - | - | - | - |")
        for key, e in r.items():
            if key.startswith(("efficient", "binary", "soft")):
                print(f"| {name} | {key} | " + " | ".join(
                    "-" if e[c] is None else f"{e[c]:.3f}" if isinstance(e[c], float) else str(e[c]) for c in cols)
                    + " |")
    if "tiny_vllm" in results:
        hf, vl = results["tiny"], results["tiny_vllm"]
        print("\nvLLM against HF, same solutions, same run (seconds; ratio > 1: vLLM faster)")
        print(f"| naive | {hf['naive_seconds']} | {vl['naive_seconds']} | {hf['naive_seconds'] / vl['naive_seconds']:.2f} |")
        for key in (k for k in hf if k.startswith(("efficient", "binary", "soft"))):
            print(f"| {key} | {hf[key]['seconds']} | {vl[key]['seconds']} | {hf[key]['seconds'] / vl[key]['seconds']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
