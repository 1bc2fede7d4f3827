"""WHEN to refine: the ORM's verdict on the draft (paper 3.2, 4.2).

The ORM scores every step of a solution; its score at the *last* step (the whole solution P_L) is
its estimate that the draft's final answer is correct. Paper 4.2 shows refiners alone "struggle
knowing when to refine", so the ORM gates refinement: a draft it trusts is returned as is.

Boundary (decided once, here): refine iff ``score <= threshold``. A draft is trusted only when the
ORM is *strictly* more confident than the threshold. The same ``<=`` is used for WHERE (paper 4.2:
"the first step S_i such that ORM(S_i) <= T"), so one threshold T means one thing everywhere.

>>> should_refine(0.3, 0.5)
True
>>> should_refine(0.5, 0.5)
True
>>> should_refine(0.51, 0.5)
False
>>> final_score([0.9, 0.8, 0.2])
0.2
>>> final_score([])
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """A threshold is a probability: reject NaN and values outside [0, 1] with a clear message."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(threshold).__name__}")
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {threshold}")
    return float(threshold)


def final_score(step_scores: Sequence[float]) -> float:
    """The ORM's score of the whole solution: its score at the last step (docs/architecture.md §3: P_L's label is
    the solution's own correctness). A solution with no steps has no evidence of being right, so it
    scores 0.0 and is always refined."""
    return float(step_scores[-1]) if len(step_scores) else 0.0


def should_refine(orm_score: float, threshold: float) -> bool:
    """Refine iff the ORM's final score of the draft is at or below ``threshold``.

    A NaN score (a broken model) counts as untrusted: refining costs compute, trusting garbage
    costs the answer.
    """
    check_threshold(threshold, "when threshold")
    if orm_score != orm_score:  # NaN
        return True
    return orm_score <= threshold
