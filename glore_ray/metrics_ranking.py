"""Threshold-free ranking metrics of reward models (Tables 1-2 without their 0.5 cut;
docs/faithful-world.md): ROC AUC with ties, its standard error, and step AUC pooled and within
each step position. Re-exported by :mod:`glore_ray.metrics`.

Labels of -1 (balanced away) are skipped; an AUC with an empty class is NaN.
"""

from __future__ import annotations

import math


def auc(scores: list[float], labels: list[int]) -> float:
    """ROC AUC of ``scores`` against 0/1 labels (-1 skipped): the chance that a random positive
    scores above a random negative, ties counting 1/2 (the Mann-Whitney U over n_pos * n_neg).
    NaN when either class is empty.

    Threshold-free, unlike :func:`classification`: a log-probability or a contrastive reward is no
    calibrated probability, and 0.5 is an arbitrary cut for it. Mid-ranks of tied runs give the
    ties their 1/2 in one sort, O(n log n), where the pair loop is O(n^2) on ~10^5 steps.

    >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> auc([0.5, 0.5], [0, 1])
    0.5
    """
    _same_length(scores, labels, "scores", "labels")
    pairs = sorted((s, int(y)) for s, y in zip(scores, labels, strict=True) if y in (0, 1))
    n_pos = sum(y for _, y in pairs)
    n_neg = len(pairs) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    rank_sum, start = 0.0, 0
    while start < len(pairs):
        end = start
        while end < len(pairs) and pairs[end][0] == pairs[start][0]:
            end += 1
        mid_rank = (start + 1 + end) / 2  # 1-based ranks start+1..end share their mean
        rank_sum += mid_rank * sum(y for _, y in pairs[start:end])
        start = end
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auc_standard_error(value: float, n_pos: int, n_neg: int) -> float:
    """The standard error of an AUC of ``value`` over ``n_pos`` positives and ``n_neg`` negatives
    (Hanley and McNeil 1982): how far apart two recipes' AUCs must be before the drafts they were
    scored on can rank them. NaN when the AUC is, or either class is empty.

    >>> round(auc_standard_error(0.8, 100, 100), 4)
    0.0314
    >>> round(auc_standard_error(0.8, 500, 500), 4)  # five times the drafts: ~1/sqrt(5) of the error
    0.014
    """
    if value != value or not n_pos or not n_neg:
        return float("nan")
    q1, q2 = value / (2 - value), 2 * value * value / (1 + value)
    var = (value * (1 - value) + (n_pos - 1) * (q1 - value * value) + (n_neg - 1) * (q2 - value * value)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def step_auc(step_scores: list[list[float]], step_labels: list[list[int]]) -> float:
    """:func:`auc` over every step of every solution. Each solution's scores and labels are
    zipped to the shorter: a scorer gives no score to steps cut off past its context length.

    >>> step_auc([[0.9, 0.2], [0.8]], [[1, 0], [1, 0]])
    1.0
    """
    _same_length(step_scores, step_labels, "step_scores", "step_labels")
    flat = [(s, y) for ss, ys in zip(step_scores, step_labels, strict=True) for s, y in zip(ss, ys)]
    return auc([s for s, _ in flat], [y for _, y in flat])


def step_auc_within_position(step_scores: list[list[float]], step_labels: list[list[int]]) -> float:
    """:func:`auc` at each step index, averaged with weights = the labelled steps there.

    Pooled step AUC also credits a prior on position (later steps are more often wrong, so a
    score that falls with the index ranks well without reading a step); within one index that
    prior is constant. Indices where one class is missing have no AUC and carry no weight; NaN
    when no index has both classes.

    >>> step_auc_within_position([[0.9, 0.2], [0.8, 0.1]], [[1, 0], [1, 0]])  # one class per index
    nan
    >>> step_auc_within_position([[0.9, 0.2], [0.3, 0.1], [0.8, 0.6]], [[1, 0], [0, 0], [1, 1]])
    1.0
    """
    _same_length(step_scores, step_labels, "step_scores", "step_labels")
    by_index: dict[int, tuple[list[float], list[int]]] = {}
    for ss, ys in zip(step_scores, step_labels, strict=True):
        for i, (s, y) in enumerate(zip(ss, ys)):
            if y in (0, 1):
                by_index.setdefault(i, ([], []))[0].append(s)
                by_index[i][1].append(y)
    weighted = [(auc(s, y), len(y)) for s, y in by_index.values()]
    weighted = [(a, n) for a, n in weighted if not math.isnan(a)]
    total = sum(n for _, n in weighted)
    return sum(a * n for a, n in weighted) / total if total else float("nan")


def _same_length(a: list, b: list, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} items but {name_b} has {len(b)}")
