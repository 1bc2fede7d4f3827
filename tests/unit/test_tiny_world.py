"""The tiny world's oracle against an independent brute force (DESIGN §8, issue 2)."""

import itertools
import random

import pytest

from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import split_steps
from glore_ray.tasks.tiny_world import (
    COMMUTATIVE,
    TinyProblem,
    TinyWorldConfig,
    exact_step_labels,
    first_invalid_step,
    generate_problems,
    prefix_is_valid,
    render_step,
)


def brute_force_valid_lines(problem: TinyProblem) -> set[tuple[str, ...]]:
    """Every valid step sequence, by enumerating node orders and operand orders and keeping the
    topologically sound ones. Shares nothing with the oracle but ``render_step``'s format."""
    nodes = problem.nodes
    out = set()
    for order in itertools.permutations(range(len(nodes))):
        position = {n: i for i, n in enumerate(order)}
        if any(o.ref is not None and position[o.ref] > position[n]
               for n in order for o in (nodes[n].left, nodes[n].right)):
            continue
        choices = [(False, True) if nodes[n].op in COMMUTATIVE else (False,) for n in order]
        for swaps in itertools.product(*choices):
            out.add(tuple(render_step(nodes[n], nodes, s) for n, s in zip(order, swaps)))
    return out


def brute_force_prefix_valid(problem, steps, valid_sequences) -> bool:
    body = [s for s in steps if not s.startswith("####")]
    n = len(body)
    if steps and steps[-1].startswith("####"):
        if any(s.startswith("####") for s in steps[:-1]):
            return False
        return any(seq[:n] == tuple(body) for seq in valid_sequences) and is_correct(steps[-1], problem.answer)
    if any(s.startswith("####") for s in steps):
        return False
    return any(seq[:n] == tuple(steps) for seq in valid_sequences)


def corrupt(rng: random.Random, problem: TinyProblem) -> list[str]:
    """A solution with a slip: wrong arithmetic, wrong operation, swapped order, dropped or
    repeated step, wrong answer, or garbage, at a random place."""
    steps = split_steps(problem.reference)
    i = rng.randrange(len(steps))
    kind = rng.choice(["arith", "op", "swap", "drop", "repeat", "answer", "garbage", "none"])
    if kind == "arith" and i < len(steps) - 1:
        lhs, rhs = steps[i].rsplit("= ", 1)
        steps[i] = f"{lhs}= {int(rhs) + rng.choice([-10, -1, 1, 2, 10])}"
    elif kind == "op" and i < len(steps) - 1:
        a, op, b, _, c = steps[i].split()
        new = rng.choice([o for o in "+-*" if o != op])
        steps[i] = f"{a} {new} {b} = {eval(f'{a}{new}{b}')}"
    elif kind == "swap" and i < len(steps) - 2:
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    elif kind == "drop" and len(steps) > 2:
        del steps[min(i, len(steps) - 2)]
    elif kind == "repeat" and i < len(steps) - 1:
        steps.insert(i, steps[i])
    elif kind == "answer":
        steps[-1] = f"#### {int(problem.answer) + 1}"
    elif kind == "garbage":
        steps[i] = rng.choice(["3 + = 4", "hello", "12 / 3 = 4", "007 + 1 = 8"])
    return steps


def test_oracle_agrees_with_brute_force_on_1000_problems():
    problems = generate_problems(1000, seed=7, split="train")
    rng = random.Random(0)
    checked = invalid_seen = 0
    for problem in problems:
        valid = brute_force_valid_lines(problem)
        candidates = [split_steps(problem.reference), corrupt(rng, problem), corrupt(rng, problem)]
        for steps in candidates:
            for k in range(1, len(steps) + 1):
                expected = brute_force_prefix_valid(problem, steps[:k], valid)
                assert prefix_is_valid(problem, steps[:k]) == expected, (problem.question, steps[:k])
                checked += 1
                invalid_seen += not expected
    assert checked > 10_000 and invalid_seen > 1_000  # the corruptions really exercise the oracle


def test_reference_solutions_are_valid_and_correct():
    for problem in generate_problems(200, seed=1, split="test"):
        assert first_invalid_step(problem, problem.reference) is None
        assert is_correct(problem.reference, problem.answer)
        assert all(exact_step_labels(problem, problem.reference))


def test_first_invalid_step_and_labels():
    problem = generate_problems(1, seed=3)[0]
    steps = split_steps(problem.reference)
    bad = list(steps)
    lhs, rhs = bad[0].rsplit("= ", 1)
    bad[0] = f"{lhs}= {int(rhs) + 1}"
    assert first_invalid_step(problem, "\n".join(bad)) == 0
    assert exact_step_labels(problem, "\n".join(bad)) == [0] * len(bad)
    assert first_invalid_step(problem, "\n".join(steps[:-1])) is None  # valid but unfinished


def test_generation_is_seeded_and_rows_round_trip():
    a = generate_problems(20, seed=5, split="train")
    assert a == generate_problems(20, seed=5, split="train")
    assert a != generate_problems(20, seed=6, split="train")
    assert {p.question for p in a}.isdisjoint({p.question for p in generate_problems(20, seed=5, split="test")})
    row = a[0].to_row()
    assert set(row) == {"id", "question", "reference", "answer", "split", "meta"}
    assert TinyProblem.from_row(row) == a[0]


def test_difficulty_knobs():
    easy = generate_problems(50, seed=0, config=TinyWorldConfig(min_ops=1, max_ops=1, ops=("+",), p_product=0.0))
    assert all(len(split_steps(p.reference)) == 2 for p in easy)
    with pytest.raises(ValueError, match="min_ops"):
        TinyWorldConfig(min_ops=3, max_ops=2)
    with pytest.raises(ValueError, match="unknown operations"):
        TinyWorldConfig(ops=("+", "^"))
