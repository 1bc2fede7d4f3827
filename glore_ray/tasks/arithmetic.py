"""The tiny world's pretraining corpus: bare arithmetic, the same for every student seed.

A real GLoRe student inherits its arithmetic from a pretrained base that does not change with the
fine-tuning seed; the SFT only teaches it to read word problems and write the chain (paper 3.1
step 1 fine-tunes a pretrained Llama-2). The tiny world had no such base, so whether a seed's SFT
learnt three-digit arithmetic within its budget decided the student's accuracy, a cliff the seed
flipped (docs/faithful-world.md). This corpus is what the ``pretrain`` stage trains the tiny base
on, with a seed of its own:

- every step kind of the world, in the form a solution writes it (``a + b = c``, ``a - b = c``,
  ``a * k = c`` for the doubling/tripling factors, ``k * m = p`` for "k packs of m"), with
  operands drawn over the whole range the world's chains reach, so the algorithm is learnt,
  not the chains' numbers;
- the product *facts* split once, by the base's seed, into known ones (seen often) and rare ones
  (seen ``rare_sightings`` times in all): the rare facts are what the student half-knows, the
  same facts whatever the student's seed, so the share of problems it gets wrong is set by the
  world and not by a learning cliff.

Rows are blocks of ``lines_per_row`` independent equations, one per line.

>>> from glore_ray.tasks.tiny_world import TinyWorldConfig
>>> world = TinyWorldConfig(max_value=30, ops=("+", "-", "*"), mul_range=(2, 3), product_k_range=(3, 4),
...                         product_m_range=(5, 7))
>>> product_facts(world)
[(3, 5), (3, 6), (3, 7), (4, 5), (4, 6), (4, 7)]
>>> known, rare = split_facts(world, known_share=0.5, seed=0)
>>> len(known), len(rare), sorted(known + rare) == product_facts(world)
(3, 3, True)
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.tiny_world import _MUL, TinyWorldConfig, fact_table, parse_step, problem_facts, product_steps

# Shares of a row's lines per step kind (products: the known facts; the rare ones are added on top).
KIND_SHARES = {"+": 0.34, "-": 0.34, "x": 0.12, "product": 0.20}


@dataclass(frozen=True)
class Equation:
    left: int
    op: str
    right: int

    @property
    def value(self) -> int:
        return self.left + self.right if self.op == "+" else self.left - self.right if self.op == "-" else self.left * self.right

    @property
    def prompt(self) -> str:
        """The line up to its result, as a probe: ``'12 + 5 ='``."""
        return f"{self.left} {self.op} {self.right} ="

    def __str__(self) -> str:
        return f"{self.prompt} {self.value}"


def product_facts(world: TinyWorldConfig) -> list[tuple[int, int]]:
    """The (k, m) of every "k packs of m" sub-step the world can write, in order."""
    k_lo, k_hi = world.product_k_range or world.mul_range
    m_lo, m_hi = world.product_m_range or (world.add_range[0] // 2 + 1, world.add_range[1] // 2 + 1)
    return [(k, m) for k in range(k_lo, k_hi + 1) for m in range(m_lo, m_hi + 1) if k != m and k * m <= world.max_value]


def world_facts(world: TinyWorldConfig) -> list[tuple]:
    """What a base can know or not: the (item, container) sizes of a knowledge world
    (``containers`` > 0), else the (k, m) products."""
    return sorted(fact_table(world)) if world.containers else product_facts(world)


def problem_fact_keys(problem, world: TinyWorldConfig) -> list[tuple]:
    """The :func:`world_facts` that ``problem``'s product steps use, in order."""
    return problem_facts(problem, world) if world.containers else product_steps(problem)


def split_facts(world: TinyWorldConfig, known_share: float, seed: int) -> tuple[list[tuple], list[tuple]]:
    """(known, rare): a seeded split of :func:`world_facts`, ``round(known_share * n)`` known."""
    facts = world_facts(world)
    shuffled = random.Random(f"pretrain-facts/{seed}").sample(facts, len(facts))
    n_known = round(known_share * len(facts))
    return sorted(shuffled[:n_known]), sorted(shuffled[n_known:])


def _factors(world: TinyWorldConfig) -> list[int]:
    """The doubling/tripling factors a ``*`` story step can take (the world's ``_MUL`` keys)."""
    return [k for k in range(world.mul_range[0], world.mul_range[1] + 1) if k in _MUL]


def random_equation(rng: random.Random, world: TinyWorldConfig, kind: str, known: list[tuple[int, int]]) -> Equation:
    """One equation of ``kind`` (``+``, ``-``, ``x``: a story factor, ``product``: a known fact),
    its operands and result inside ``0..max_value``. Half the ``+``/``-`` amounts are the world's
    stated amounts, half span the whole range (the amounts a product makes)."""
    top = world.max_value
    if kind == "product":
        k, m = rng.choice(known)
        return Equation(k, "*", m)
    if kind == "x":
        k = rng.choice(_factors(world))
        return Equation(rng.randint(1, top // k), "*", k)
    small = rng.random() < 0.5
    if kind == "+":
        a = rng.randint(0, top - 1)
        hi = min(top - a, world.add_range[1]) if small else top - a
        return Equation(a, "+", rng.randint(min(world.add_range[0], hi), hi))
    a = rng.randint(1, top)
    hi = min(a, world.add_range[1]) if small else a
    return Equation(a, "-", rng.randint(min(world.add_range[0], hi), hi))


def pretrain_corpus(world: TinyWorldConfig, rows: int, lines_per_row: int, known_share: float,
                    rare_sightings: int, seed: int) -> list[str]:
    """``rows`` texts of ``lines_per_row`` equations (see the module docstring); a pure function
    of its arguments. Kinds the world lacks are left out (no ``*``: no factors, no products)."""
    if rows < 1 or lines_per_row < 1:
        raise ValueError(f"pretrain: rows and lines_per_row must be >= 1, got {rows}, {lines_per_row}")
    if world.containers:
        raise ValueError("pretrain.corpus=equations cannot teach a knowledge world's container sizes "
                         "(tiny_world.containers > 0): they are read from the question; use problems")
    known, rare = split_facts(world, known_share, seed) if "*" in world.ops else ([], [])
    shares = {k: s for k, s in KIND_SHARES.items()
              if (k in ("+", "-") and k in world.ops) or (k == "x" and "*" in world.ops and _factors(world))
              or (k == "product" and known)}
    if not shares:
        raise ValueError(f"pretrain: tiny_world.ops {list(world.ops)} leave nothing to pretrain on")
    rng = random.Random(f"pretrain-corpus/{seed}")
    kinds, weights = list(shares), list(shares.values())
    lines = [random_equation(rng, world, kind, known) for kind in rng.choices(kinds, weights, k=rows * lines_per_row)]
    # The rare facts: rare_sightings each in all, at random places (replacing other lines).
    slots = rng.sample(range(len(lines)), min(len(lines), rare_sightings * len(rare)))
    for slot, (k, m) in zip(slots, [f for f in rare for _ in range(rare_sightings)], strict=False):
        lines[slot] = Equation(k, "*", m)
    return ["\n".join(str(e) for e in lines[i:i + lines_per_row]) for i in range(0, len(lines), lines_per_row)]


def solution_corpus(world: TinyWorldConfig, rows: int, known_share: float, rare_sightings: int, seed: int,
                    with_question: bool) -> list[tuple[str, str]]:
    """``rows`` (prompt, target) pairs of worked solutions of the world, drawn with the base's seed:
    the student's own format (prompt: the student prompt with the question, or nothing when
    ``with_question`` is off: the chains alone). A solution using a rare fact is kept only while
    that fact has been seen fewer than ``rare_sightings`` times; the rest use known facts only.
    A pure function of its arguments.

    Raises ValueError, naming the knobs, when too few of the world's solutions keep to the known facts."""
    from glore_ray.tasks.tiny_world import iter_problems

    if rows < 1:
        raise ValueError(f"pretrain: rows must be >= 1, got {rows}")
    _, rare = split_facts(world, known_share, seed) if "*" in world.ops else ([], [])
    rare_set, seen = set(rare), Counter()
    corpus, limit = [], 20 * rows
    for drawn, problem in enumerate(iter_problems(seed, "pretrain", world), start=1):
        if drawn > limit:
            break
        rare_here = [f for f in problem_fact_keys(problem, world) if f in rare_set]
        if any(seen[f] >= rare_sightings for f in rare_here):
            continue
        seen.update(rare_here)
        corpus.append((student_prompt(problem.question) if with_question else "", problem.reference))
        if len(corpus) == rows:
            return corpus
    raise ValueError(f"pretrain: only {len(corpus)} of {limit} solutions of the world keep to the known facts "
                     f"(known_share {known_share}); raise pretrain.known_share or lower data.tiny_world.p_product")


def step_probes(problem, world: TinyWorldConfig, rare: set, with_question: bool) -> list[tuple[str, str, str]]:
    """(kind, prompt, result) for every step of ``problem``'s reference: the prompt is the solution
    up to that step's ``=`` (after the student prompt when ``with_question``), so the base is
    probed on each step where a solution writes it; a knowledge world's fact step is probed from
    ``k *`` on (the size is what is asked), its result then reads ``m = k*m``. Kinds: ``+``/``-`` a stated amount,
    ``+product``/``-product`` an amount that a product made, ``x`` a story factor, ``known
    fact``/``rare fact`` a "k packs of m" product (by :func:`world_facts`)."""
    amounts = sorted({node.right.ref for node in problem.nodes} - {None})
    facts = dict(zip(amounts, problem_fact_keys(problem, world), strict=True))
    lines = [line for line in problem.reference.split("\n") if parse_step(line)]
    head = student_prompt(problem.question) if with_question else ""
    probes = []
    for i, (node, line) in enumerate(zip(problem.nodes, lines, strict=True)):
        if i in facts:
            kind = "rare fact" if facts[i] in rare else "known fact"
        elif node.op == "*":
            kind = "x"
        else:
            kind = node.op + ("product" if node.right.ref is not None else "")
        before = head + "".join(earlier + "\n" for earlier in lines[:i])
        if i in facts and world.containers:  # the size is the fact: probe from "k *" on
            probes.append((kind, before + f"{node.left.const} *", f"{node.right.const} = {node.value}"))
        else:
            probes.append((kind, before + line.split(" = ")[0] + " =", str(node.value)))
    return probes


def fact_sightings(corpus: list[str]) -> Counter:
    """How often each ``k * m`` line appears in ``corpus`` (a check on the split, and the report's)."""
    counts: Counter = Counter()
    for text in corpus:
        for line in text.split("\n"):
            parsed = parse_step(line)
            if parsed is not None and parsed[1] == "*":
                counts[(parsed[0], parsed[2])] += 1
    return counts
