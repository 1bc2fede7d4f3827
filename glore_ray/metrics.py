"""The paper's metrics, over plain lists (App. B Table 5, Tables 1-3, App. D, App. G, 4.2).

Conventions: a (S)ORM score is a probability in [0, 1]; a step is *predicted* positive iff its
score is above the threshold, so the first step with score <= T is the predicted first error
(paper 4.2: "the first step S_i such that ORM(S_i) <= T"). Labels of -1 (balanced away) are
skipped everywhere. A rate over an empty set is NaN (undefined), never 0.

>>> majority_vote(["18", "18.0", "7", None])
'18'
>>> round(pass_at_k(n=4, c=1, k=2), 3)
0.5
>>> aggregate_step_scores([0.9, 0.2, 0.8], "min")
0.2
"""

from __future__ import annotations

import bisect
import math
from collections import Counter

from glore_ray.decide.how import best_index
from glore_ray.decide.where import first_bad_step

# The threshold-free ranking metrics live in metrics_ranking; they are this module's too.
from glore_ray.metrics_ranking import _same_length
from glore_ray.metrics_ranking import auc as auc
from glore_ray.metrics_ranking import auc_standard_error as auc_standard_error
from glore_ray.metrics_ranking import step_auc as step_auc
from glore_ray.metrics_ranking import step_auc_within_position as step_auc_within_position
from glore_ray.tasks.grading import answers_match, normalize_answer

# ---------------------------------------------------------------------------------------------
# Sampling metrics (App. B, Table 5)


def majority_vote(answers: list[str | None]) -> str | None:
    """The most frequent normalised answer (``18`` == ``18.0``); ``None`` answers do not vote.

    Ties go to the answer that occurs first in ``answers``, so a vote never depends on hashing
    and maj@1 is the first sample's answer.

    >>> majority_vote(["3", "4", "4", "3"])
    '3'
    """
    normal = [normalize_answer(a) for a in answers]
    counts = Counter(a for a in normal if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in normal if a is not None and counts[a] == best)


def maj_at_k(answers: list[list[str | None]], references: list[str], k: int) -> float:
    """Accuracy of the majority vote over each question's first ``k`` sampled answers."""
    _same_length(answers, references, "answers", "references")
    return _mean([answers_match(majority_vote(a[:k]), ref) for a, ref in zip(answers, references, strict=True)])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(correct: list[list[bool]], k: int) -> float:
    """pass@k averaged over questions, each from its own list of per-sample correctness."""
    return _mean([pass_at_k(len(c), sum(c), k) for c in correct])


def rerank_at_k(scores: list[list[float]], correct: list[list[bool]], k: int) -> float:
    """Accuracy when each question keeps the top-scored of its first ``k`` samples."""
    _same_length(scores, correct, "scores", "correct")
    return _mean([c[best_index(s[:k])] for s, c in zip(scores, correct, strict=True)])


# ---------------------------------------------------------------------------------------------
# Reward-model classification (Tables 1-2, 4.1)


def classification(scores: list[float], labels: list[int], threshold: float = 0.5) -> dict:
    """Accuracy, false-positive and false-negative counts and rates of ``score > threshold``
    against 0/1 labels (-1 skipped). FP rate = FP / negatives, FN rate = FN / positives."""
    _same_length(scores, labels, "scores", "labels")
    pairs = [(s > threshold, y == 1) for s, y in zip(scores, labels, strict=True) if y in (0, 1)]
    tp = sum(p and y for p, y in pairs)
    tn = sum(not p and not y for p, y in pairs)
    fp = sum(p and not y for p, y in pairs)
    fn = sum(not p and y for p, y in pairs)
    return {"n": len(pairs), "accuracy": _ratio(tp + tn, len(pairs)), "positives": tp + fn,
            "false_positives": fp, "false_negatives": fn,
            "fp_rate": _ratio(fp, fp + tn), "fn_rate": _ratio(fn, fn + tp)}


def step_accuracy(step_scores: list[list[float]], step_labels: list[list[int]], threshold: float = 0.5) -> dict:
    """Table 1: :func:`classification` over every labelled step of every solution."""
    _same_length(step_scores, step_labels, "step_scores", "step_labels")
    flat = [pair for ss, ys in zip(step_scores, step_labels, strict=True) for pair in _steps(ss, ys)]
    return classification([s for s, _ in flat], [y for _, y in flat], threshold)


def final_answer_accuracy(step_scores: list[list[float]], correct: list[bool], threshold: float = 0.5) -> dict:
    """Table 2: :func:`classification` of the last step's score against final correctness."""
    _same_length(step_scores, correct, "step_scores", "correct")
    return classification([s[-1] for s in step_scores], [int(c) for c in correct], threshold)


def first_negative(labels: list[int]) -> int | None:
    """0-based index of the first 0 label, else ``None`` (the true first error)."""
    return next((i for i, y in enumerate(labels) if y == 0), None)


def first_error_accuracy(predicted: list[int | None], step_labels: list[list[int]]) -> float:
    """Share of solutions whose predicted first error equals the labels' first 0 (``None`` ==
    ``None`` counts: both say the solution has no error)."""
    _same_length(predicted, step_labels, "predicted", "step_labels")
    return _mean([p == first_negative(y) for p, y in zip(predicted, step_labels, strict=True)])


def first_error_f1(step_scores: list[list[float]], step_labels: list[list[int]], threshold: float = 0.5) -> dict:
    """First-error detection as ProcessBench scores it (Zheng et al. 2024): the predicted first
    error is :func:`~glore_ray.decide.where.first_bad_step` (the first step scored <= ``threshold``,
    or none); ``erroneous``
    is the share of solutions with a 0 label whose first 0 is found exactly, ``clean`` the share
    of all-positive solutions predicted to have none, ``f1`` their harmonic mean (0 when either
    is 0; NaN when either set is empty).

    >>> first_error_f1([[0.9, 0.2], [0.8, 0.7], [0.3, 0.9], [0.2, 0.9]], [[1, 0], [1, 1], [1, 0], [1, 1]])
    {'erroneous': 0.5, 'clean': 0.5, 'f1': 0.5, 'n_erroneous': 2, 'n_clean': 2}
    """
    _same_length(step_scores, step_labels, "step_scores", "step_labels")
    hits: dict[bool, list[bool]] = {True: [], False: []}
    for ss, ys in zip(step_scores, step_labels, strict=True):
        truth = first_negative(ys)
        hits[truth is not None].append(first_bad_step(ss, threshold) == truth)
    erroneous, clean = _mean(hits[True]), _mean(hits[False])
    f1 = 2 * erroneous * clean / (erroneous + clean) if erroneous + clean else 0.0  # NaN + x is NaN
    return {"erroneous": erroneous, "clean": clean, "f1": f1,
            "n_erroneous": len(hits[True]), "n_clean": len(hits[False])}


def first_error_threshold(step_scores: list[list[float]], step_labels: list[list[int]]) -> dict:
    """The threshold that maximises :func:`first_error_f1` on these solutions (a calibration
    set, never the one then scored), with its F1. NaN scores count as bad, as in ``first_bad_step``.

    Predictions change only at score values, so each gap between consecutive distinct scores in
    [0, 1] is one candidate, taken at its midpoint (a margin on both sides for unseen data). A
    solution is right on an interval of thresholds: [s_L, min(s_<L)) when its first error is L,
    [0, min(s)) when it has none; counting interval ends by bisection makes every candidate
    O(log n). Ties in F1 go to the threshold nearest 0.5, the uncalibrated default.

    >>> best = first_error_threshold([[0.9, 0.6], [0.8, 0.7], [0.9, 0.3], [0.2, 0.9]], [[1, 0], [1, 1], [1, 0], [1, 1]])
    >>> round(best["threshold"], 3), best["erroneous"], best["clean"]
    (0.65, 1.0, 0.5)
    """
    _same_length(step_scores, step_labels, "step_scores", "step_labels")
    starts, ends, clean_ends = [], [], []
    for ss, ys in zip(step_scores, step_labels, strict=True):
        ss = [-math.inf if s != s else s for s in ss]
        truth = first_negative(ys)
        if truth is None:
            clean_ends.append(min(ss, default=math.inf))
        elif truth < len(ss) and ss[truth] < min(ss[:truth], default=math.inf):
            starts.append(ss[truth])
            ends.append(min(ss[:truth], default=math.inf))
    n_err = len(step_scores) - len(clean_ends)
    starts.sort(), ends.sort(), clean_ends.sort()
    points = sorted({0.0, 1.0} | {min(max(s, 0.0), 1.0) for ss in step_scores for s in ss if s == s})
    best = None
    for tau in [(a + b) / 2 for a, b in zip(points, points[1:])] or [0.5]:
        erroneous = (bisect.bisect_right(starts, tau) - bisect.bisect_right(ends, tau)) / n_err if n_err else math.nan
        clean = (len(clean_ends) - bisect.bisect_right(clean_ends, tau)) / len(clean_ends) if clean_ends else math.nan
        f1 = 2 * erroneous * clean / (erroneous + clean) if erroneous + clean else 0.0
        rank = (-1.0 if f1 != f1 else f1, -abs(tau - 0.5), -tau)
        if best is None or rank > best[0]:
            best = (rank, {"threshold": tau, "erroneous": erroneous, "clean": clean, "f1": f1,
                           "n_erroneous": n_err, "n_clean": len(clean_ends)})
    return best[1]


# ---------------------------------------------------------------------------------------------
# Reranking with step scores (App. D)

RERANK_HEURISTICS = ("final", "mean", "weighted_mean", "min", "product", "penultimate_mean")


def aggregate_step_scores(scores: list[float], method: str) -> float:
    """One rerank score from per-step scores (App. D).

    ``weighted_mean``: the paper prints weights 1/(L-i-1), which divide by zero at i = L-1; we
    read it as weights growing toward the end, 1/(L-i+1) for 1-based i (last step 1, the one
    before 1/2, ...), normalised to sum to one. ``penultimate_mean``: printed as
    (ORM(S_{L-1}) - ORM(S_L)) / 2; a "mean" and the runner-up to ``final`` in Fig. 5 only make
    sense as (ORM(S_{L-1}) + ORM(S_L)) / 2, which is what we compute (``final`` when L = 1).

    >>> aggregate_step_scores([0.5, 1.0], "weighted_mean") == (0.5 / 2 + 1.0) / 1.5
    True
    """
    if not scores:
        raise ValueError("aggregate_step_scores: a solution with no steps")
    if method == "final":
        return scores[-1]
    if method == "mean":
        return sum(scores) / len(scores)
    if method == "weighted_mean":
        n = len(scores)
        weights = [1 / (n - i) for i in range(n)]  # 0-based i: 1/(L-i) == 1/(L-(i+1)+1)
        return sum(w * s for w, s in zip(weights, scores, strict=True)) / sum(weights)
    if method == "min":
        return min(scores)
    if method == "product":
        return math.prod(scores)
    if method == "penultimate_mean":
        return (scores[-2] + scores[-1]) / 2 if len(scores) > 1 else scores[-1]
    raise ValueError(f"unknown rerank heuristic {method!r}; known: {RERANK_HEURISTICS}")


def rerank_by_heuristic(step_scores: list[list[list[float]]], correct: list[list[bool]],
                        methods: tuple[str, ...] = RERANK_HEURISTICS) -> dict[str, float]:
    """Fig. 5: reranking accuracy with each heuristic. ``step_scores[q][s]`` are the step
    scores of sample s of question q; ``correct[q][s]`` its correctness."""
    _same_length(step_scores, correct, "step_scores", "correct")
    out = {}
    for method in methods:
        picks = [best_index([aggregate_step_scores(s, method) for s in q]) for q in step_scores]
        out[method] = _mean([c[p] for p, c in zip(picks, correct, strict=True)])
    return out


# ---------------------------------------------------------------------------------------------
# Refinement (Table 3, Fig. 3-4, 4.2) and label quality (App. G)


def fix_rate(draft_correct: list[bool], refined_correct: list[bool]) -> float:
    """Share of incorrect drafts whose refinement is correct (Table 3)."""
    _same_length(draft_correct, refined_correct, "draft_correct", "refined_correct")
    return _mean([r for d, r in zip(draft_correct, refined_correct, strict=True) if not d])


def damage_rate(draft_correct: list[bool], refined_correct: list[bool]) -> float:
    """Share of correct drafts whose refinement is incorrect (refining when it should not)."""
    _same_length(draft_correct, refined_correct, "draft_correct", "refined_correct")
    return _mean([not r for d, r in zip(draft_correct, refined_correct, strict=True) if d])


def fixed_set(ids: list[str], draft_correct: list[bool], refined_correct: list[bool]) -> set[str]:
    """Ids of the incorrect drafts a refiner fixed."""
    _same_length(ids, draft_correct, "ids", "draft_correct")
    return {i for i, d, r in zip(ids, draft_correct, refined_correct, strict=True) if not d and r}


def overlap(fixed_a: set[str], fixed_b: set[str]) -> dict:
    """How (dis)joint two fixed-sets are (4.2: global and local fix complementary problems).

    >>> overlap({"a", "b"}, {"b", "c"})["jaccard"]
    0.3333333333333333
    """
    union = fixed_a | fixed_b
    return {"only_a": len(fixed_a - fixed_b), "only_b": len(fixed_b - fixed_a), "both": len(fixed_a & fixed_b),
            "union": len(union), "jaccard": _ratio(len(fixed_a & fixed_b), len(union))}


def refinement_report(ids: list[str], draft_ok: list[bool], refined_ok: dict[str, list[bool]],
                      reranked_ok: list[bool], policy_ok: list[bool]) -> dict:
    """Table 3, Figure 3, Figure 4 and the global/local complementarity, from per-draft correctness.

    ``refined_ok[kind][i]``: is draft i's ``kind`` refinement correct (a draft a local refiner was
    not asked to refine counts as itself, paper 4.2), for kinds ``global``, ``local_orm``,
    ``local_sorm`` (and any other, e.g. App. J's ``value``); ``reranked_ok``: the ORM's pick among
    draft, global and local+SORM (Fig. 4); ``policy_ok``: the GLoRe policy's answer (when, where,
    how: :func:`glore_ray.decide.decide`, as served).

    >>> r = refinement_report(["a", "b"], [False, True], {"global": [True, True], "local_orm": [False, True],
    ...                       "local_sorm": [False, False]}, [True, True], [True, True])
    >>> r["table3"]["global"], r["figure3"]["local_sorm"]["damage_rate"], r["figure4"]["oracle"]
    (1.0, 1.0, 1.0)
    """
    for kind, ok in refined_ok.items():
        _same_length(ok, draft_ok, f"refined_ok[{kind!r}]", "draft_ok")
    _same_length(reranked_ok, draft_ok, "reranked_ok", "draft_ok")
    _same_length(policy_ok, draft_ok, "policy_ok", "draft_ok")
    incorrect = [i for i, d in enumerate(draft_ok) if not d]

    def best_of(kinds):  # an oracle picks any correct refinement
        return [any(refined_ok[k][i] for k in kinds) for i in range(len(draft_ok))]

    table3 = {"global": fix_rate(draft_ok, refined_ok["global"]),
              "local+orm": fix_rate(draft_ok, refined_ok["local_orm"]),
              "local+sorm": fix_rate(draft_ok, refined_ok["local_sorm"]),
              "global+local+orm": fix_rate(draft_ok, best_of(["global", "local_orm"])),
              "global+local+sorm": fix_rate(draft_ok, best_of(["global", "local_sorm"]))}
    figure3 = {k: {"all_drafts": _mean(ok), "incorrect_drafts": _mean([ok[i] for i in incorrect]),
                   "damage_rate": damage_rate(draft_ok, ok)} for k, ok in refined_ok.items()}
    oracle = [d or g or s for d, g, s in zip(draft_ok, refined_ok["global"], refined_ok["local_sorm"], strict=True)]
    figure4 = {"greedy": _mean(draft_ok), "rerank_draft_global_local": _mean(reranked_ok), "oracle": _mean(oracle),
               "policy": _mean(policy_ok)}
    fixed = {k: fixed_set(ids, draft_ok, refined_ok[k]) for k in ("global", "local_sorm")}
    return {"table3": table3, "figure3": figure3, "figure4": figure4,
            "complementarity": overlap(fixed["global"], fixed["local_sorm"]), "n_incorrect_drafts": len(incorrect)}


def label_agreement(labels: list[list[int]], exact: list[list[int]]) -> dict:
    """App. G: how often generated step labels equal exact ones (-1 generated labels skipped).
    False positive: label 1 on an invalid step; false negative: 0 on a valid one."""
    _same_length(labels, exact, "labels", "exact")
    pairs = [(y, t) for ys, ts in zip(labels, exact, strict=True) for y, t in _steps(ys, ts) if y in (0, 1)]
    return {"n_steps": len(pairs), "agreement": _ratio(sum(y == t for y, t in pairs), len(pairs)),
            "false_positives": sum(y == 1 and t == 0 for y, t in pairs),
            "false_negatives": sum(y == 0 and t == 1 for y, t in pairs)}


def _steps(a: list, b: list) -> list[tuple]:
    """Per-step pairs of one solution; a clear error when the two lists disagree in length."""
    if len(a) != len(b):
        raise ValueError(f"per-step lists differ in length: {len(a)} scores/labels vs {len(b)}")
    return list(zip(a, b, strict=True))


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _mean(values: list) -> float:
    """Mean of booleans or floats; NaN for an empty list (undefined, not 0)."""
    return sum(float(v) for v in values) / len(values) if values else float("nan")
