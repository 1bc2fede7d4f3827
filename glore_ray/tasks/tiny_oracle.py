"""The exact oracle of the tiny world: the V* label of every step of a solution (paper 3.1, App. G).

A prefix is valid iff each of its steps applies an operation of the problem's graph not applied
yet, to operands already available, with correct arithmetic, and the answer can still be reached
from it (the story's operations may come in any order that reaches it). That is the ground truth
the paper could only hand-label for 257 steps (App. G); the SORM's labels, the faithfulness
metrics and the oracle-control reward model are all measured against it.

>>> from glore_ray.tasks.tiny_world import generate_problems
>>> p = generate_problems(1, seed=0, split="train")[0]
>>> all(exact_step_labels(p, p.reference)), first_invalid_step(p, "1 + 1 = 2")
(True, 0)
"""

from __future__ import annotations

import functools

from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import is_answer_step, split_steps
from glore_ray.tasks.tiny_graph import COMMUTATIVE, OPS, TinyProblem, operand_value, parse_step


def _chain(problem: TinyProblem) -> tuple[int, list[int], set[int]]:
    """(start value, the story's operations in order, the product sub-steps) of a problem.

    Every tiny-world graph is a chain: each story operation takes the running total on its left
    and a stated amount or a product sub-step (``k packs of m``) on its right.
    """
    nodes, chain, i = problem.nodes, [], len(problem.nodes) - 1
    while True:
        chain.append(i)
        if nodes[i].left.ref is None:
            break
        i = nodes[i].left.ref
    chain.reverse()
    products = set(range(len(nodes))) - set(chain)
    if any(o.ref is not None for p in products for o in (nodes[p].left, nodes[p].right)) or \
            any(nodes[c].right.ref is not None and nodes[c].right.ref not in products for c in chain):
        raise ValueError(f"tiny world problem {problem.id!r}: its graph is not a chain of operations")
    return nodes[chain[0]].left.const, chain, products


@functools.lru_cache(maxsize=1 << 16)
def _reachable(value: int, remaining: tuple[tuple[str, int], ...], answer: int) -> bool:
    """Can some order of the ``remaining`` (op, amount) operations take ``value`` to ``answer``,
    through running totals a step can state (non-negative)? ``remaining`` is sorted, so equal
    multisets share a cache entry and repeated operations are tried once."""
    if not remaining:
        return value == answer
    for i, (op, amount) in enumerate(remaining):
        if i and remaining[i - 1] == (op, amount):
            continue
        after = OPS[op](value, amount)
        if after >= 0 and _reachable(after, remaining[:i] + remaining[i + 1:], answer):
            return True
    return False


def step_validity(problem: TinyProblem, steps: list[str]) -> list[bool]:
    """Validity of every prefix: ``out[i]`` is True iff steps[0..i] is a valid prefix.

    A prefix is valid iff the answer can still be reached from it, which is V* (paper 3.1). A
    step is valid iff it computes a product sub-step not yet computed, or applies one of the
    story operations not yet applied to the running total (the amount stated or its sub-step
    computed), with correct arithmetic, and some order of the operations left still reaches the
    answer: "doubles them, then triples them" may be written ``7 * 3 = 21`` then ``21 * 2 = 42``,
    and a run of additions and subtractions in any order whose totals stay non-negative.

    Once a step is invalid every longer prefix is invalid too. The answer line is valid iff the
    prefix before it is valid and it states the right answer; any line after it is invalid.
    """
    start, chain, products = _chain(problem)
    # The states a valid prefix can be in: (running total, story operations left, products
    # computed). A line can name more than one operation (a running total that equals a stated
    # amount), so the oracle follows every reading and a prefix is valid while one survives.
    states = {(start, frozenset(chain), frozenset())}
    out, ok, answered = [], True, False
    for step in steps:
        if ok and not answered and is_answer_step(step):
            ok, answered = is_correct(step, problem.answer), True
        elif ok and not answered:
            parsed = parse_step(step)
            arithmetic = parsed is not None and parsed[3] == OPS[parsed[1]](parsed[0], parsed[2])
            states = {n for s in states for n in _next_states(problem, products, s, parsed)} if arithmetic else set()
            ok = bool(states)
        else:
            ok = False
        out.append(ok)
    return out


def _next_states(problem: TinyProblem, products: set[int], state, parsed) -> list[tuple]:
    """Every state that the step ``parsed`` (with correct arithmetic) can lead to from ``state``
    while the answer stays reachable: a product sub-step computed, or a story operation applied
    to the running total (its amount stated, or its sub-step computed)."""
    a, op, b, c = parsed
    total, remaining, computed = state
    nodes, out = problem.nodes, []
    for idx in products - computed:
        node = nodes[idx]
        if node.op == op and node.value == c and sorted((a, b)) == sorted((node.left.const, node.right.const)):
            out.append((total, remaining, computed | {idx}))
    for idx in remaining:
        node, right = nodes[idx], nodes[idx].right
        if node.op != op or (right.ref is not None and right.ref not in computed):
            continue  # another operation, or its "k packs of m" not computed yet
        amount = operand_value(right, nodes)
        if (a, b) != (total, amount) and not (op in COMMUTATIVE and (a, b) == (amount, total)):
            continue
        rest = remaining - {idx}
        if c >= 0 and _reachable(c, tuple(sorted((nodes[i].op, operand_value(nodes[i].right, nodes)) for i in rest)),
                                 int(problem.answer)):
            out.append((c, rest, computed))
    return out


def prefix_is_valid(problem: TinyProblem, steps: list[str]) -> bool:
    """The exact V* label of a prefix (a list of step lines)."""
    return all(step_validity(problem, steps)) if steps else True


def first_invalid_step(problem: TinyProblem, solution: str) -> int | None:
    """0-based index of the first invalid step, or ``None`` if every step is valid.

    A solution whose steps are all valid but that stops before an answer line has no invalid
    step; it is still not correct (the grader decides that).
    """
    validity = step_validity(problem, split_steps(solution))
    return next((i for i, ok in enumerate(validity) if not ok), None)


def exact_step_labels(problem: TinyProblem, solution: str) -> list[int]:
    """0/1 per step: the exact counterpart of SORM labels (App. G ground truth)."""
    return [int(v) for v in step_validity(problem, split_steps(solution))]
