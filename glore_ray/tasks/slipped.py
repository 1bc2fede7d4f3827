"""Student training text that teaches computing from what is written (docs/faithful-world.md).

Real models got the habit of computing from their own scratchpad from pretraining; a tiny model
trained on references alone can as well track the true total from the question and write
numbers around it (63% of correct answers had a wrong step in the first tiny world). A student
row whose prompt holds a slipped result and whose target carries the slip through teaches the
habit (``student.slipped_rows``).
"""

from __future__ import annotations

import random

from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.steps import join_steps
from glore_ray.tasks.tiny_world import OPS, TinyProblem, TinyWorldConfig, iter_problems, render_step


def slipped_digit(value: int, rng: random.Random) -> int:
    """``value`` with one digit, at a uniformly drawn position, written as another digit (never a
    leading zero): the slips a student samples, which hit the tens and hundreds as often as the
    units (e.g. ``7 + 333 = 330``, docs/faithful-world.md), where adding -9..9 mostly moved the
    units. The value always changes.

    >>> slips = {slipped_digit(340, random.Random(s)) for s in range(400)}
    >>> len(slips), sorted(slips)[:4], 40 in slips, 340 in slips  # 8 hundreds + 9 tens + 9 units
    (26, [140, 240, 300, 310], False, False)
    """
    digits = str(value)
    at = rng.randrange(len(digits))
    other = [d for d in "0123456789" if d != digits[at] and not (at == 0 and d == "0" and len(digits) > 1)]
    return int(digits[:at] + rng.choice(other) + digits[at + 1:])


def slipped_continuation(problem: TinyProblem, rng: random.Random, max_value: int = 999) -> tuple[str, str] | None:
    """(prefix, continuation): the reference up to a step whose result is written wrong, and the
    solution that *follows from the written number*.

    The slip sits in the prompt, so the loss never teaches making one, and no sample,
    label or draft that a reward model or refiner sees is corrupted. ``None`` when the slipped
    chain leaves ``0..max_value`` or the problem has no step whose result a later step reads.
    """
    nodes = list(problem.nodes)
    readers = [i for i, n in enumerate(nodes) if any(o.ref is not None for o in (n.left, n.right))]
    if not readers:
        return None
    read_from = sorted({o.ref for i in readers for o in (nodes[i].left, nodes[i].right) if o.ref is not None})
    j = rng.choice(read_from)
    slip = slipped_digit(nodes[j].value, rng)
    if not 0 <= slip <= max_value:
        return None
    values = [n.value for n in nodes]
    values[j] = slip
    for i in range(j + 1, len(nodes)):
        n = nodes[i]
        a, b = (values[o.ref] if o.ref is not None else o.const for o in (n.left, n.right))
        values[i] = OPS[n.op](a, b)
        if not 0 <= values[i] <= max_value:
            return None

    def line(i: int) -> str:
        n = nodes[i]
        a, b = (values[o.ref] if o.ref is not None else o.const for o in (n.left, n.right))
        return f"{a} {n.op} {b} = {values[i]}"

    prefix = [render_step(n, nodes) for n in nodes[:j]] + [line(j)]
    rest = [line(i) for i in range(j + 1, len(nodes))] + [f"#### {values[-1]}"]
    return join_steps(prefix), join_steps(rest)


def slipped_corpus(world: TinyWorldConfig, rows: int, seed: int,
                   rare_facts: frozenset = frozenset()) -> list[tuple[str, str]]:
    """``rows`` (prompt, target) pairs for the pretrained base: the student prompt with a problem
    of ``world`` and its reference up to a slipped step, then the solution that follows from the
    written number. Drawn from a split of their own (``pretrain-slipped``) with the base's seed, so
    the base's other rows are unchanged; a problem that uses one of ``rare_facts`` (the facts the
    base sees only ``pretrain.rare_sightings`` times) is skipped, so the slipped rows never add
    sightings. A pure function of its arguments."""
    from glore_ray.tasks.arithmetic import problem_fact_keys

    rng, out = random.Random(f"pretrain-slipped/{seed}"), []
    for drawn, problem in enumerate(iter_problems(seed, "pretrain-slipped", world), start=1):
        if len(out) == rows:
            return out
        if drawn > 20 * rows:
            break
        if rare_facts and not rare_facts.isdisjoint(problem_fact_keys(problem, world)):
            continue
        made = slipped_continuation(problem, rng, world.max_value)
        if made is not None:
            out.append((student_prompt(problem.question) + made[0], made[1]))
    if len(out) < rows:
        raise ValueError(f"pretrain: only {len(out)} of {rows} slipped rows from {20 * rows} problems of the world "
                         "(a slip must keep the chain inside 0..max_value); lower pretrain.slipped_share")
    return out
