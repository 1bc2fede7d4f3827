"""WHERE to refine: the first step a step-level verifier doubts (paper 3.1 step 3, 4.2).

The SORM (or, for the paper's ablation, the ORM) scores every step of the draft; the first step
whose score is ``<= T`` is taken as the first error E, and the local refiner sees it as the literal
``[BAD]`` token at the start of that line (paper 3.1: "a [BAD] token prefixing the incorrect step").

Step indices are 0-based and count the *non-empty* lines of a solution (``split_steps``), exactly
the positions at which the reward models read their scores (docs/architecture.md §3).

>>> first_bad_step([0.9, 0.7, 0.4, 0.1], 0.5)
2
>>> first_bad_step([0.9, 0.5], 0.5)
1
>>> first_bad_step([0.9, 0.8], 0.5) is None
True

Value refinement (paper App. J) places ``[BAD]`` differently: after the step the ORM values most
(the ORM approximates the student's value function V^pi, paper 3), not at a located error.

>>> value_bad_step([0.6, 0.8, 0.3, 0.1])
2
>>> value_bad_step([0.6, 0.8, 0.3, 0.9]) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from glore_ray.decide.when import check_threshold

BAD_TOKEN = "[BAD]"


def first_bad_step(step_scores: Sequence[float], threshold: float) -> int | None:
    """Index of the first step scored ``<= threshold`` (a NaN score counts as bad); ``None`` when
    every step is above it (or there are no steps)."""
    check_threshold(threshold, "where threshold")
    for index, score in enumerate(step_scores):
        if score != score or score <= threshold:
            return index
    return None


def check_step_index(index: int, n_steps: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_steps:
        raise ValueError(f"bad step index {index!r} out of range for a draft of {n_steps} steps")
    return index


def highest_value_step(step_scores: Sequence[float]) -> int | None:
    """argmax_i ORM(P_i) over a draft's steps (paper App. J: "the highest value step S_i of each
    draft using the ORM"); ties go to the later step, as in the value-refinement training data
    (:func:`glore_ray.labeling.refine_pairs.highest_value_prefix`); a NaN score never wins unless
    every score is NaN; ``None`` when there are no steps."""
    best = None
    for index, score in enumerate(step_scores):
        value = -math.inf if score != score else score
        if best is None or value >= best[1]:
            best = (index, value)
    return None if best is None else best[0]


def value_bad_step(step_scores: Sequence[float]) -> int | None:
    """Where the value refiner's ``[BAD]`` goes: before S_{i+1}, S_i the highest-value step.
    ``None`` (no value refinement) when the highest-value step is the last one, the whole draft,
    so nothing after it is to be redone, or when there are no steps."""
    best = highest_value_step(step_scores)
    if best is None or best == len(step_scores) - 1:
        return None
    return best + 1
