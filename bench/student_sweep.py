"""The student over seeds: is the tiny world's student faithful, and in the band, on every seed?

Runs the data and student stages only (SFT; ``--ei`` keeps the config's EI rounds) for each seed,
each in its own resumable run directory ``runs/sweeps/<name>/seed_<s>``, and prints per seed and
as mean ± sd over the seeds finished so far:

- greedy maj@1 and pass@K on the test split (K = ``student.eval_k``), and the SFT train loss;
- right answer, wrong steps (the exact oracle): the share of the correct greedy test drafts and
  of the correct temperature samples that hold an invalid step, and what the samples' first
  wrong steps are (misread operands, or arithmetic slips the chain carries or drops);
- whether each seed meets the faithful-world targets (docs/faithful-world.md): maj@1 in
  [0.40, 0.70], pass@K >= maj@1 + 0.15, wrong steps <= 5% of greedy drafts, <= 10% of samples.

A killed sweep resumes where it stopped (finished seeds are read back, a student mid-training
resumes at its last checkpoint), so no one command has to outlive a session: run one seed per
command if need be. The configuration is the config file plus dotted overrides, as for any job:

    .venv/bin/python bench/student_sweep.py --name long5to7 --seeds 0,1,2 \\
        data.tiny_world.min_ops=5 data.tiny_world.max_ops=7 data.n_train=6000 ...

Writes ``runs/sweeps/<name>/sweep.json`` (every finished seed, the overrides, the machine).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glore_ray.claims import TARGETS, gains_at_least, wrong_rate  # noqa: E402  (the faithful world's targets)
from glore_ray.config import load_config  # noqa: E402


def seed_result(cfg) -> dict:
    """The student's numbers for one finished run directory (round 0 unless EI rounds ran)."""
    from glore_ray.stages.data import tiny_problems
    from glore_ray.stages.evaluate import student_faithfulness
    from glore_ray.stages.student import round_table, rounds_table
    from glore_ray.tasks.faithfulness import wrong_step_kinds

    run = Path(cfg.run.run_dir)
    rounds = rounds_table(run)
    problems = tiny_problems(cfg, "train", "test")  # an EI round admits rows of train questions
    faith = student_faithfulness(run, problems)
    k = cfg.student.eval_k
    per_round = [{"round": r["round"], "maj1": r["maj@1"], "passk": r[f"pass@{k}"], "train_loss": r["train_loss"],
                  "seconds": r["seconds"], "greedy_wrong": f["test_greedy"], "samples_wrong": f["test_samples"],
                  "samples_wrong_kinds": wrong_step_kinds(problems, round_table(run, r["round"], "eval_samples"), "text"),
                  **({"admitted_wrong": f["admitted"]} if "admitted" in f else {})}
                 for r, f in zip(rounds, faith, strict=True)]
    return {"seed": cfg.run.seed, "k": k, "rounds": per_round}


def in_band(r: dict) -> dict[str, bool]:
    lo, hi = TARGETS["maj1"]
    return {"maj1": lo <= r["maj1"] <= hi, "pass_gap": gains_at_least(r["passk"], r["maj1"], TARGETS["pass_gap"]),
            "greedy_wrong": wrong_rate(r["greedy_wrong"]) <= TARGETS["greedy_wrong"],
            "samples_wrong": wrong_rate(r["samples_wrong"]) <= TARGETS["samples_wrong"]}


def print_table(results: list[dict]) -> None:
    if not results:
        print("no seed finished yet")
        return
    k = results[0]["k"]
    print(f"{'seed':>4} {'round':>5} {'maj@1':>6} {f'pass@{k}':>7} {'loss':>6} {'wrong greedy':>15} "
          f"{'wrong samples':>17} {'sec':>6}  in band")
    for res in results:
        for r in res["rounds"]:
            g, s = r["greedy_wrong"], r["samples_wrong"]
            band = in_band(r)
            verdict = "yes" if all(band.values()) else "no: " + ", ".join(key for key, ok in band.items() if not ok)
            print(f"{res['seed']:>4} {r['round']:>5} {r['maj1']:>6.3f} {r['passk']:>7.3f} {r['train_loss']:>6.3f} "
                  f"{g['wrong_steps']:>4}/{g['correct']:<4} {wrong_rate(g):.3f} {s['wrong_steps']:>5}/{s['correct']:<5} "
                  f"{wrong_rate(s):.3f} {r['seconds']:>6.0f}  {verdict}")
            if r.get("samples_wrong_kinds"):  # what the wrong steps are (tasks/faithfulness.wrong_step_kind)
                print(" " * 11 + "wrong steps in samples: "
                      + ", ".join(f"{kind} {n}" for kind, n in r["samples_wrong_kinds"].items() if n))
    sft = [res["rounds"][0] for res in results]
    if len(sft) > 1:
        cols = {"maj@1": [r["maj1"] for r in sft], f"pass@{k}": [r["passk"] for r in sft],
                "wrong greedy": [wrong_rate(r["greedy_wrong"]) for r in sft],
                "wrong samples": [wrong_rate(r["samples_wrong"]) for r in sft]}
        print("SFT over seeds " + ", ".join(str(res["seed"]) for res in results) + ": "
              + "; ".join(f"{name} {statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" for name, v in cols.items()))
    print("every seed in the band (SFT): " + ("yes" if all(all(in_band(r).values()) for r in sft) else "no"))


def main(argv: list[str] | None = None) -> list[dict]:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--name", required=True, help="the configuration's name: runs/sweeps/<name>/")
    parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1, 2],
                        help="comma-separated, e.g. 0,1,2 (the default)")
    parser.add_argument("--ei", action="store_true", help="keep the config's EI rounds (default: SFT only)")
    parser.add_argument("--root", default="runs/sweeps")
    parser.add_argument("--base-dir", help="where the shared pretrained base lives (default: runs/sweeps/<name>); "
                                           "name another sweep's directory to try SFT recipes on its base")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.n_train=6000")
    args = parser.parse_args(argv)
    out_dir = Path(args.root) / args.name
    fixed = list(args.overrides) + ([] if args.ei else ["student.max_rounds=0"])
    # A pretrained base (pretrain.enabled) does not depend on run.seed: the seeds share one.
    configs = [load_config(args.config, fixed + [f"run.seed={s}", f"run.run_dir={out_dir / f'seed_{s}'}",
                                                 f"pretrain.shared_dir={args.base_dir or out_dir}"])
               for s in args.seeds]

    from glore_ray.rollout.ray_setup import init_ray
    from glore_ray.stages.data import run_data
    from glore_ray.stages.student import run_student

    init_ray(configs[0].run, log_to_driver=False)
    base = None
    if configs[0].pretrain.enabled:
        from glore_ray.stages.pretrain import run_pretrain

        manifest = run_pretrain(configs[0])
        base = {"counts": manifest["counts"], "seconds": manifest["seconds"]}
        print("pretrained base: " + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items()), flush=True)
    results = []
    for cfg in configs:
        t0 = time.time()
        run_data(cfg)
        run_student(cfg)
        results.append(seed_result(cfg))
        print(f"seed {cfg.run.seed}: done in {time.time() - t0:.0f}s (this command)", flush=True)
        summary = {"name": args.name, "config": args.config, "overrides": fixed, "machine": machine(),
                   **({"pretrain": base} if base else {}), "seeds": _merge(out_dir / "sweep.json", results)}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "sweep.json").write_text(json.dumps(summary, indent=2))
        print_table(summary["seeds"])
    return results


def machine() -> str:
    """The CPU's model name and its widest vector extension: float results differ across CPUs."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    return f"{name} ({'AVX-512' if 'avx512f' in info else 'AVX2' if 'avx2' in info else 'no AVX2'})"


def _merge(path: Path, fresh: list[dict]) -> list[dict]:
    """Seeds finished by earlier commands of this sweep, updated with this command's."""
    old = json.loads(path.read_text())["seeds"] if path.exists() else []
    by_seed = {r["seed"]: r for r in old} | {r["seed"]: r for r in fresh}
    return [by_seed[s] for s in sorted(by_seed)]


if __name__ == "__main__":
    main()
