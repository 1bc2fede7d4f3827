zip(answers, references, strict=Truezip(scores, correct, strict=Truezip(scores, labels, strict=Truezip(step_scores, step_labels, strict=Truezip(_same(ss, ys), ys, strict=Truezip(predicted, step_labels, strict=Truezip(weights, scores, strict=Truezip(picks, correct, strict=Truezip(draft_correct, refined_correct, strict=Truezip(draft_correct, refined_correct, strict=Truezip(ids, draft_correct, refined_correct, strict=Truezip(labels, exact, strict=Truezip(_same(ys, ts), ts, strict=True) if y in (0, 1)]
    return {"n_steps": len(pairs), "agreement": _ratio(sum(y == t for y, t in pairs), len(pairs)),
            "false_positives": sum(y == 1 and t == 0 for y, t in pairs),
            "false_negatives": sum(y == 0 and t == 1 for y, t in pairs)}


def _same(a: list, b: list) -> list:
    if len(a) != len(b):
        raise ValueError(f"per-step lists differ in length: {len(a)} scores/labels vs {len(b)}")
    return a


def _same_length(a: list, b: list, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} items but {name_b} has {len(b)}")


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _mean(values: list) -> float:
    """Mean of booleans or floats; NaN for an empty list (undefined, not 0)."""
    return sum(float(v) for v in values) / len(values) if values else float("nan")
