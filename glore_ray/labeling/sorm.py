zip(labels, out, strict=True))


def balance_by_step(rows: list[dict], seed: int) -> tuple[list[dict], int]:
    """Post-processing (3), training set only: at each step index, mark the excess labels of the
    majority class as -1 so positives and negatives are equal there. Returns new rows (inputs
    untouched) and how many labels it marked.

    Without it positives pile up at the start of solutions and negatives at the end, a position
    prior the SORM learns instead of step validity (paper 3.1). Which labels go is seeded.

    >>> rows = [{"labels": [1, 0]}, {"labels": [1, 1]}, {"labels": [0, 0]}]
    >>> balance_by_step(rows, seed=0)
    ([{'labels': [-1, 0]}, {'labels': [1, 1]}, {'labels': [0, -1]}], 2)
    """
    by_step: dict[tuple[int, int], list[int]] = defaultdict(list)  # (step, label) -> row numbers
    for r, row in enumerate(rows):
        for i, label in enumerate(row["labels"]):
            if label in (0, 1):
                by_step[(i, label)].append(r)
    out = [dict(row, labels=list(row["labels"])) for row in rows]
    marked = 0
    rng = random.Random(f"balance/{seed}")
    for step in sorted({i for i, _ in by_step}):
        pos, neg = by_step.get((step, 1), []), by_step.get((step, 0), [])
        majority = pos if len(pos) > len(neg) else neg
        for r in rng.sample(majority, abs(len(pos) - len(neg))):
            out[r]["labels"][step] = IGNORE
            marked += 1
    return out, marked


def solution_steps(sample: dict, where: str) -> list[str]:
    """The steps of a sample row's ``text``; a ValueError naming ``where`` for a malformed row."""
    for name, kind in (("question_id", str), ("prompt", str), ("text", str), ("correct", bool), ("answer", str)):
        if not isinstance(sample.get(name), kind):
            raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {sample.get(name)!r:.60}")
    return split_steps(sample["text"])


def label_row(sample: dict, steps: list[str], labels: list[int], audit: dict) -> dict:
    """A SORM label row: the step_bce row format (shared with ORM rows) plus audit fields."""
    return {
        "question_id": sample["question_id"],
        "prompt": sample["prompt"],
        "solution": join_steps(steps),
        "labels": labels,
        "correct": sample["correct"],
        **audit,
    }
