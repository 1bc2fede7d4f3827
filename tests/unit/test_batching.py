"""length_groups: the CPU's cut of a mixed-length batch into forward passes is the cheapest one."""

from __future__ import annotations

import doctest
import itertools
import random

import pytest

import glore_ray.models.batching as batching
from glore_ray.models.batching import length_groups


def _cost(lengths, groups, call_cost):
    return sum(call_cost + (end - start) * lengths[end - 1] for start, end in groups)


def _cheapest_by_enumeration(lengths, call_cost):
    """Every way to cut n sorted rows into contiguous groups (2^(n-1) of them)."""
    n, best = len(lengths), None
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        cost = _cost(lengths, list(zip(bounds, bounds[1:])), call_cost)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_groups_are_optimal_and_cover_every_row_once(seed):
    rng = random.Random(seed)
    lengths = sorted(rng.choice([rng.randint(20, 80), rng.randint(150, 250)]) for _ in range(rng.randint(1, 9)))
    call_cost = rng.choice([0, 8, 48, 500])
    groups = length_groups(lengths, call_cost)
    assert [i for start, end in groups for i in range(start, end)] == list(range(len(lengths)))
    assert _cost(lengths, groups, call_cost) == _cheapest_by_enumeration(lengths, call_cost)


def test_extremes_and_bad_input():
    assert length_groups([5, 6, 7], call_cost=0) == [(0, 1), (1, 2), (2, 3)]  # calls are free: no padding
    assert length_groups([5, 60, 700], call_cost=10**6) == [(0, 3)]  # calls are dear: one pass
    with pytest.raises(ValueError, match="ascending"):
        length_groups([3, 2], 1)
    with pytest.raises(ValueError, match="call_cost"):
        length_groups([1, 2], -1)


def test_docstring_examples_run():
    failed, attempted = doctest.testmod(batching)
    assert failed == 0 and attempted > 0
