"""Training-layer benchmark: tokens/s (1 vs 2 workers, tiny vs ~10M params), ZeRO-0 vs ZeRO-2,
padding with and without length bucketing. CPU, local Ray, real DeepSpeed.

    .venv/bin/python bench/train.py            # prints a table, writes bench/results/train.json

tokens/s is non-pad training tokens per second over all workers, the median over optimizer steps
after the first (Ray Train / DeepSpeed start-up excluded; it is reported separately as wall_s).
Timings on shared 2-core machines are noisy: compare rows of one run, not across runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glore_ray.config import ModelConfig, TrainConfig  # noqa: E402
from glore_ray.models.tiny import build_tiny_lm  # noqa: E402
from glore_ray.models.tokenizer import train_tokenizer  # noqa: E402
from glore_ray.tasks.tiny_world import generate_problems  # noqa: E402
from glore_ray.training.data import encode_rows, micro_batch_order, padding_fraction  # noqa: E402
from glore_ray.training.trainer import fine_tune  # noqa: E402

MODELS = {
    "tiny": ModelConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, max_len=256),
    "10M": ModelConfig(n_layer=6, d_model=384, n_head=6, d_ff=1024, max_len=256),
}
RUNS = [  # (model, workers, zero stage, bucketing)
    ("tiny", 1, 0, True), ("tiny", 2, 0, True), ("tiny", 1, 0, False),
    ("10M", 1, 0, True), ("10M", 2, 0, True), ("10M", 2, 2, True),
]


def build_model_dir(name, tok, root) -> tuple[str, int]:
    model = build_tiny_lm(MODELS[name], tok)
    path = Path(root) / name
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path), sum(p.numel() for p in model.parameters())


def one_run(rows, init, workers, zero, bucket) -> dict:
    cfg = TrainConfig(epochs=1, lr_max=1e-3, lr_min=1e-4, batch_size=32, micro_batch=8, num_workers=workers,
                      zero_stage=zero, packing=bucket, max_len=256, cpus_per_worker=1.0, max_failures=0)
    start = time.perf_counter()
    result = fine_tune("lm", rows, init, tempfile.mkdtemp(prefix="bench_train_"), cfg)
    rates = [h["tokens_per_s"] for h in result.history[1:]] or [result.tokens_per_s]
    return {"tokens_per_s": statistics.median(rates), "padding_fraction": result.padding_fraction,
            "final_loss": result.final_loss, "steps": len(result.history), "wall_s": time.perf_counter() - start}


def main() -> None:
    import ray

    problems = generate_problems(256, seed=0, split="train")
    tok = train_tokenizer([f"Q: {p.question}\nA: {p.reference}" for p in problems], vocab_size=384)
    rows = [{"prompt": f"Q: {p.question}\nA: ", "target": p.reference} for p in problems]
    lengths = [e.length for e in encode_rows(rows, "lm", tok, 256)[0]]
    offline = {b: padding_fraction(lengths, micro_batch_order(lengths, 8, seed=0, bucket=b)) for b in (False, True)}
    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    root = tempfile.mkdtemp(prefix="bench_models_")
    dirs = {name: build_model_dir(name, tok, root) for name in MODELS}
    results = []
    for name, workers, zero, bucket in RUNS:
        row = {"model": name, "params": dirs[name][1], "workers": workers, "zero": zero, "bucketing": bucket,
               **one_run(rows, dirs[name][0], workers, zero, bucket)}
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'model':>5} {'params':>9} {'wk':>2} {'zero':>4} {'bucket':>6} {'tok/s':>8} {'pad':>6} "
          f"{'loss':>6} {'wall_s':>6}")
    for r in results:
        print(f"{r['model']:>5} {r['params']:>9,} {r['workers']:>2} {r['zero']:>4} {str(r['bucketing']):>6} "
              f"{r['tokens_per_s']:>8.0f} {r['padding_fraction']:>6.3f} {r['final_loss']:>6.3f} {r['wall_s']:>6.1f}")
    pick = lambda m, w, z, b: next(r for r in results if (r["model"], r["workers"], r["zero"], r["bucketing"]) == (m, w, z, b))
    ratios = {
        "tiny_2w_over_1w": pick("tiny", 2, 0, True)["tokens_per_s"] / pick("tiny", 1, 0, True)["tokens_per_s"],
        "10M_2w_over_1w": pick("10M", 2, 0, True)["tokens_per_s"] / pick("10M", 1, 0, True)["tokens_per_s"],
        "10M_zero2_over_zero0_2w": pick("10M", 2, 2, True)["tokens_per_s"] / pick("10M", 2, 0, True)["tokens_per_s"],
    }
    print("\nratios:", json.dumps({k: round(v, 3) for k, v in ratios.items()}))
    print(f"padding fraction over one epoch of micro-batches of 8: no bucketing {offline[False]:.3f}, "
          f"bucketing {offline[True]:.3f}")
    out = Path(__file__).parent / "results" / "train.json"
    out.write_text(json.dumps({"runs": results, "ratios": ratios, "padding_offline": {
        "no_bucketing": offline[False], "bucketing": offline[True]}, "cpu_count": os.cpu_count(),
        "load_avg_at_end": os.getloadavg()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
