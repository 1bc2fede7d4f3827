"""The one grader: answer extraction, normalisation and numeric comparison.

Every stage uses it: Expert Iteration filtering, ORM/SORM labels, refinement data, metrics and
serving. docs/architecture.md §3: take the number after the last ``####``; strip ``$ , %`` and a trailing
period; compare numerically so ``18 == 18.0``, ``1,000 == 1000`` and ``0.5 == 1/2``.

Fallback when there is no ``####`` (documented and tested): the last number in the text, but
only when the text's last non-empty line holds a number (an ``answer is 12`` style ending).
Model garbage never raises: it yields ``None`` ("no answer"), which is never correct.

>>> extract_answer("3 + 4 = 7\\n#### 7")
'7'
>>> is_correct("#### $1,000.", "1000")
True
>>> is_correct("no idea", "3")
False
"""

from __future__ import annotations

import re
from fractions import Fraction

ANSWER_MARK = "####"
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?%?|-?\$?\.\d+%?")
# A number whose text is longer than this is treated as garbage, not parsed: a model that emits a
# 5,000-digit "answer" must not cost the grader seconds of big-integer work.
_MAX_DIGITS = 64


def extract_answer(text: str | None) -> str | None:
    """The answer string of a solution, or ``None`` when there is none.

    With ``####``: the first number after the *last* mark (a model that writes two answer lines
    is graded on the last one). Without it: the last number of the last non-empty line.
    """
    if not text:
        return None
    if ANSWER_MARK in text:
        tail = text.rsplit(ANSWER_MARK, 1)[1]
        match = _NUMBER.search(tail)
        return _clean(match.group(0)) if match else None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    numbers = _NUMBER.findall(lines[-1])
    return _clean(numbers[-1]) if numbers else None


def _clean(raw: str) -> str:
    return raw.replace("$", "").replace(",", "").replace("%", "").replace(" ", "").rstrip(".")


def to_number(answer: str | None) -> Fraction | None:
    """Parse a cleaned answer into an exact rational, ``None`` if it is not a number."""
    if answer is None:
        return None
    text = _clean(answer.strip())
    if not text or len(text) > _MAX_DIGITS:
        return None
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = Fraction(num) / Fraction(den)
        else:
            value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value


def normalize_answer(answer: str | None) -> str | None:
    """Canonical string of a numeric answer (``'18.0' -> '18'``, ``'1/2' -> '0.5'``)."""
    value = to_number(answer)
    if value is None:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    return repr(as_float) if Fraction(as_float) == value else f"{value.numerator}/{value.denominator}"


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Numeric equality of two answer strings; ``False`` when either is not a number."""
    a, b = to_number(predicted), to_number(reference)
    if a is None or b is None:
        return False
    # Exact rationals: 0.5 == 1/2, 18 == 18.00, and whole numbers compare exactly however large.
    # A non-integer may be a rounded repeating fraction (SVAMP has a few), hence the tolerance.
    if a == b or (a.denominator == 1 and b.denominator == 1):
        return a == b
    return abs(a - b) <= Fraction(1, 10**6) * max(1, abs(b))


def is_correct(solution: str | None, reference_answer: str | None) -> bool:
    """The grader: does ``solution``'s final answer equal ``reference_answer``?"""
    return answers_match(extract_answer(solution), reference_answer)
