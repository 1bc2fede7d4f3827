zip(requests, results, owners, strict=Truezip(raw, labels, strict=Truezip(raw, labels, strict=Truezip(requests, results, owners, strict=True):
        _record(p, request, result, config, stats, rollouts)


def _record(p: _Prefix, request: VerifyRequest, result: VerifyResult, config: LabelConfig,
            stats: SormStats, rollouts: list) -> None:
    """Account one rollout to its prefix (requests of one prefix arrive in sample order)."""
    counts, rejected = rollout_counts(result, p.steps, config.consistency, config.strict_consistency)
    p.made += 1
    stats.consistency_rejected += rejected
    stats.tokens_generated += result.num_tokens
    if counts and not p.success:
        p.success, p.witness = True, result.text
    rollouts.append({
        "question_id": request.question_id,
        "solution_key": request.solution_key,
        "prefix_key": request.seed_key,
        "prefix_index": request.prefix_index,
        "prefix": request.prefix,
        "sample_index": request.sample_index,
        "text": result.text,
        "correct": result.correct,
        "counted": counts,
        "consistency_rejected": rejected,
        "num_tokens": result.num_tokens,
    })


def _call(verify: Verify, requests: list[VerifyRequest], max_batch: int, stats: SormStats) -> list[VerifyResult]:
    results = []
    for start in range(0, len(requests), max_batch):
        batch = requests[start : start + max_batch]
        out = list(verify(batch))
        stats.verify_calls += 1
        if len(out) != len(batch) or not all(isinstance(r, VerifyResult) for r in out):
            raise ValueError(f"verify returned {len(out)} items for {len(batch)} requests; "
                             "it must return one VerifyResult per request, in order")
        results.extend(out)
    stats.rollouts_requested += len(requests)
    return results


def _parse(samples: list[dict], stats: SormStats, table: dict | None) -> list[_Solution]:
    """Solutions with their prefixes; with a ``table`` equal prefixes of a question are shared."""
    solutions = []
    for n, sample in enumerate(samples):
        steps = solution_steps(sample, f"sample {n} (question {sample.get('question_id')!r})")
        if not steps:
            stats.skipped_empty += 1
            continue
        key = f"{sample['question_id']}/{n}"
        prefixes = []
        for i in range(len(steps) - 1):
            text = join_steps(steps[: i + 1])
            seed_key = prefix_key(sample["question_id"], text)
            fresh = _Prefix(VerifyRequest(key, sample["question_id"], sample["prompt"], text, i, 0,
                                          sample["answer"], seed_key), steps[: i + 1])
            prefixes.append(fresh if table is None else table.setdefault(seed_key, fresh))
        solutions.append(_Solution(sample, steps, prefixes))
    stats.solutions = len(solutions)
    return solutions


def _with_sample(template: VerifyRequest, j: int) -> VerifyRequest:
    return VerifyRequest(template.solution_key, template.question_id, template.prompt, template.prefix,
                         template.prefix_index, j, template.answer, template.seed_key)


def _row(s: _Solution, labels: list[int], raw: list[int]) -> dict:
    audit = {
        "raw_labels": raw,  # -1: not rolled out (efficient scheduler; rule (1) decided it)
        "witnesses": [p.witness for p in s.prefixes] + [None],  # first counting rollout's suffix
        "rollouts_per_step": [p.made for p in s.prefixes] + [0],  # shared prefixes: shared count
        "prefix_keys": [p.request.seed_key for p in s.prefixes] + [""],
    }
    return label_row(s.sample, s.steps, labels, audit)
