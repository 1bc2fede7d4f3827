"""First-error evaluation in ProcessBench's format: score any reward-model checkpoint on a JSON list
of {id, problem, steps, final_answer_correct, label} records; print accuracy on the erroneous and the
correct records and their harmonic mean (F1). τ is fixed (--threshold) or chosen on another file
(--calibration), never on the records scored.

    python jobs/first_errors.py --model runs/tiny/reward_models/sorm/model \\
        --records runs/tiny/evaluate/first_errors/test_drafts.json \\
        --calibration runs/tiny/evaluate/first_errors/calibration.json
    ray job submit --working-dir . -- python jobs/first_errors.py --model ... --records ... --threshold 0.5
"""

import argparse
import functools
import json
import sys

from glore_ray.tasks.records import DataError


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--model", required=True, help="a reward-model checkpoint (HF directory)")
    parser.add_argument("--records", required=True, help=".json list or .jsonl of records to score")
    tau = parser.add_mutually_exclusive_group(required=True)
    tau.add_argument("--calibration", help="records (another file) on which τ maximising F1 is chosen")
    tau.add_argument("--threshold", type=float, help="a fixed τ in [0, 1]")
    parser.add_argument("--predictions", help="also write each record's prediction and step scores here (.jsonl)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    args = parser.parse_args(argv)

    import torch

    from glore_ray.decide.when import check_threshold
    from glore_ray.models.loading import load_reward_model
    from glore_ray.stages.first_errors import evaluate_first_errors

    try:
        if args.threshold is not None:
            check_threshold(args.threshold, "--threshold")
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

        @functools.cache
        def model():  # loaded on first use: after the records have passed their checks
            return load_reward_model(args.model, device=device)

        def score(prompts, solutions):
            return model().score_steps(prompts, solutions)

        summary = evaluate_first_errors(score, args.records, args.calibration, args.threshold, args.predictions)
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    summary["model"] = args.model
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
