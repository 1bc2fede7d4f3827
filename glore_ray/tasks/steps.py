"""Steps, prefixes, intermediate results and the consistency constraint (docs/architecture.md §3, paper 3.1).

A solution is one step per non-empty line; the ``#### N`` answer line is the last step. Prefix
P_i is steps 1..i (1-based in the paper, 0-based here: ``join_steps(split_steps(s)[: i + 1])``).

>>> split_steps("2 + 3 = 5\\n\\n5 * 4 = 20\\n#### 20")
['2 + 3 = 5', '5 * 4 = 20', '#### 20']
>>> step_result("He pays 2*3=<<2*3=6>>6 dollars")
'6'
>>> is_consistent("6 * 4 = 24\\n#### 24", "2 + 3 = 5")
False
"""

from __future__ import annotations

import re

from glore_ray.tasks.grading import ANSWER_MARK, to_number

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
# A '-' is a sign only where it cannot be subtraction (not after a digit, letter or ')'): in
# "180-135" the result 135 must be found. Thousands separators only in groups of three.
_NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")


def split_steps(solution: str) -> list[str]:
    """The non-empty lines of a solution, stripped; the answer line stays the last step."""
    return [line.strip() for line in solution.splitlines() if line.strip()]


def join_steps(steps: list[str]) -> str:
    """Inverse of :func:`split_steps`: one step per line, each line newline-terminated."""
    return "".join(step + "\n" for step in steps)


def is_answer_step(step: str) -> bool:
    return step.lstrip().startswith(ANSWER_MARK)


def numbers_in(text: str) -> list[str]:
    """Every number in ``text`` with thousands separators removed, in order."""
    return [m.group(0).replace(",", "") for m in _NUMBER.finditer(text)]


def step_result(step: str) -> str | None:
    """R_i: the result of the last ``<<expr=r>>`` annotation, else the number after the last
    ``=``, else the last number of the step; ``None`` for a step without numbers."""
    annotations = _ANNOTATION.findall(step)
    if annotations and "=" in annotations[-1]:
        found = numbers_in(annotations[-1].rsplit("=", 1)[1])
        if found:
            return found[0]
    if "=" in step:
        found = numbers_in(step.rsplit("=", 1)[1])
        if found:
            return found[0]
    found = numbers_in(step)
    return found[-1] if found else None


def mentions_number(text: str, value: str) -> bool:
    """Does ``value`` occur in ``text`` as a whole number (``2`` is not found in ``12``)?

    Paper 3.1 checks R_i "as a string in the suffix"; a bare substring test would let ``2`` pass
    inside ``12`` or ``2.5``, so numbers are compared token-wise and by value (``6`` == ``6.0``).
    """
    target = to_number(value)
    if target is None:
        return value in text
    return any(to_number(n) == target for n in numbers_in(text))


def is_consistent(suffix: str, step: str, earlier_unused: list[str] | None = None) -> bool:
    """The consistency constraint (paper 3.1, post-processing (2)).

    A rollout continuing from a prefix ending in ``step`` only counts if ``step``'s result R_i
    appears in the generated ``suffix``. It does not apply to the answer line, nor to a step
    without a number. The strict variant also requires every result in ``earlier_unused``
    (results of earlier steps not yet used inside the prefix) to appear in the suffix.
    """
    if is_answer_step(step):
        return True
    required = [step_result(step)] + list(earlier_unused or [])
    return all(r is None or mentions_number(suffix, r) for r in required)


def unused_results(steps: list[str]) -> list[str]:
    """Results of ``steps[:-1]`` never mentioned by a later step of ``steps`` (for the strict
    consistency variant: they must still be used by the rollout's suffix)."""
    unused = []
    for i, step in enumerate(steps[:-1]):
        r = step_result(step)
        if r is not None and not is_answer_step(step):
            later = "\n".join(steps[i + 1 :])
            if not mentions_number(later, r):
                unused.append(r)
    return unused
