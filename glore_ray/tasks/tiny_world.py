"""The tiny world: GSM8K-shaped word problems whose computation graph is known (docs/architecture.md §8).

Each problem is a small DAG of integer operations over numbers stated in the question. A
solution writes one operation per line, ``a op b = c``, then ``#### answer``. Because the graph is
known, the *exact* V* label of every prefix is computable: a prefix is valid iff each of its steps
applies an operation of the graph not applied yet, to operands already available, with correct
arithmetic, and the answer can still be reached from it (the story's operations may come in any
order that reaches it). That is the ground truth the paper could only hand-label for 257 steps
(App. G).

Every number in a problem (stated or computed) is distinct, so the reference's lines name their
graph nodes unambiguously.

The problem and its graph are ``tiny_graph``'s; the exact oracle that computes those labels is
``tiny_oracle``'s (both re-exported here).

>>> p = generate_problems(1, seed=0, split="train")[0]
>>> p.reference.splitlines()[-1] == f"#### {p.answer}"
True
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

from glore_ray.tasks.steps import join_steps
from glore_ray.tasks.tiny_graph import COMMUTATIVE, OPS, Node, Operand, TinyProblem, parse_step, render_step
from glore_ray.tasks.tiny_oracle import exact_step_labels, first_invalid_step, prefix_is_valid, step_validity

# The problem's graph and the exact oracle have modules of their own; their names stay importable
# from here, where the package's users and tools outside it (the fidelity check) find them.
__all__ = [
    "COMMUTATIVE", "OPS", "Node", "Operand", "TinyProblem", "TinyWorldConfig", "exact_step_labels", "fact_table",
    "first_invalid_step", "generate_problems", "iter_problems", "parse_step", "prefix_is_valid", "problem_facts",
    "problem_item", "product_steps", "render_step", "step_validity", "world_items",
]


@dataclass(frozen=True)
class TinyWorldConfig:
    """Difficulty knobs of the generator."""

    min_ops: int = 2  # story operations (a product sub-step adds one more line)
    max_ops: int = 4
    start_range: tuple[int, int] = (5, 60)
    add_range: tuple[int, int] = (2, 40)
    mul_range: tuple[int, int] = (2, 4)
    max_value: int = 999
    p_product: float = 0.25  # chance an add/subtract amount is itself "k groups of m"
    # k and m of a "k groups of m" product; None: k from mul_range, m from about half of add_range.
    # Two-digit ranges make a step the student cannot master beside ones it does (docs/faithful-world.md).
    product_k_range: tuple[int, int] | None = None
    product_m_range: tuple[int, int] | None = None
    max_products: int | None = None  # at most this many product sub-steps a problem (None: no cap)
    # > 0: a product is "k <container>" and the container's size is world knowledge, never stated:
    # each item comes in this many containers, whose sizes (drawn from product_m_range by
    # fact_seed, the world's and never the run's) form a fact table (:func:`fact_table`). The
    # student has to know the size, as GSM8K asks how many are in a dozen (docs/faithful-world.md).
    containers: int = 0
    fact_seed: int = 0
    # Irrelevant clauses a problem states, (fewest, most): another person's amount of the same item
    # ("Ben has 14 apples.", terse: "sees Ben with 14 apples"), a number drawn like the story's amounts that no step may use. Reading
    # past them is what a student can get wrong without the arithmetic getting easier or harder
    # (GSM-IC: irrelevant context; docs/faithful-world.md). (0, 0): none, the problems as before.
    distractors: tuple[int, int] = (0, 0)
    ops: tuple[str, ...] = ("+", "-", "*")
    style: str = "story"  # story: a sentence per operation; terse: one sentence of short clauses

    def __post_init__(self):
        if self.style not in ("story", "terse"):
            raise ValueError(f"tiny_world.style must be story or terse, got {self.style!r}")
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"tiny_world: need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        for name in ("start_range", "add_range", "mul_range", "product_k_range", "product_m_range"):
            if getattr(self, name) is None:
                continue
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"tiny_world.{name}: need 0 < lo <= hi, got {(lo, hi)}")
        if self.max_products is not None and self.max_products < 0:
            raise ValueError(f"tiny_world.max_products must be >= 0 (or null: no cap), got {self.max_products}")
        if self.containers:
            m_lo, m_hi = self.product_m_range or (0, -1)
            if not 0 < self.containers <= min(len(_CONTAINERS), m_hi - m_lo + 1):
                raise ValueError(f"tiny_world.containers must be in 1..{len(_CONTAINERS)} and at most the sizes of "
                                 f"product_m_range {self.product_m_range} (each item's sizes are distinct), got {self.containers}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"tiny_world.distractors: need 0 <= fewest <= most, got {tuple(self.distractors)}")
        if unknown := set(self.ops) - set(OPS):
            raise ValueError(f"tiny_world.ops: unknown operations {sorted(unknown)}; known: {sorted(OPS)}")


# --------------------------------------------------------------------------------------------
# Generation

_NAMES = ["Ava", "Ben", "Cora", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Max", "Nia"]
_ITEMS = ["apples", "marbles", "stamps", "coins", "shells", "cards", "books", "pens", "beads", "rocks"]
_GAIN = ["finds {n} more {item}", "buys {n} more {item}", "gets {n} {item} from a friend", "wins {n} {item}"]
_LOSS = ["gives away {n} {item}", "loses {n} {item}", "sells {n} {item}", "uses {n} {item}"]
# Knowledge worlds (containers > 0): ten more items, and the containers whose sizes are facts.
_MORE_ITEMS = ["buttons", "stickers", "seeds", "nuts", "eggs", "cups", "toys", "bolts", "candles", "keys"]
_CONTAINERS = ["bags", "boxes", "crates", "jars", "trays", "tins", "baskets", "sacks", "cases", "bins", "pouches",
               "cartons", "buckets", "barrels", "chests", "packets"]
_GAIN_GROUPS = ["buys {k} bags with {m} {item} in each", "gets {k} boxes of {m} {item}"]
_LOSS_GROUPS = ["gives {k} friends {m} {item} each", "packs {k} jars with {m} {item} each and sells them"]
# Factors a "*" step can take (mul_range is cut to these): 5-9 make steps whose arithmetic a tiny
# model can get wrong beside ones it masters (docs/faithful-world.md).
_MUL = {2: "doubles the {item}", 3: "triples the {item}",
        **{k: f"ends up with {k} times as many {{item}}" for k in range(4, 10)}}
MAX_MISSES = 2000  # draws in a row without a new problem before generation gives up
# Terse clauses: the same graph in about half the tokens, so a tiny model spends its capacity on
# the arithmetic rather than on finding the numbers in a long story (docs/architecture.md §8).
_TERSE = {"+": "gets {n} more", "-": "loses {n}", "+k": "gets {k} packs of {m}", "-k": "gives away {k} packs of {m}",
          2: "doubles them", 3: "triples them", **{k: f"gets {k} times as many" for k in range(4, 10)},
          # The item beside its container, as in the story style, so a size's key sits in one
          # clause. (It did not make the sizes learnable: know16a's base knew 0.196 of the known
          # ones, know16's 0.201; the lookup itself is the limit, docs/faithful-world.md.)
          "+c": "gets {k} {container} of {item}", "-c": "gives away {k} {container} of {item}"}
_KNOWN_GAIN, _KNOWN_LOSS = "buys {k} {container} of {item}", "sells {k} {container} of {item}"
_ITEM = re.compile(r"^\S+ has \d+ (\S+?)[.,]")


def world_items(config: TinyWorldConfig) -> list[str]:
    return _ITEMS + _MORE_ITEMS if config.containers else _ITEMS


@functools.lru_cache(maxsize=16)
def fact_table(config: TinyWorldConfig) -> dict[tuple[str, str], int]:
    """(item, container) -> size: the knowledge world's facts, a pure function of the world's knobs
    (``fact_seed``, never ``run.seed``); sizes are distinct within an item, so a size names its
    container. Empty unless ``containers`` > 0."""
    if not config.containers:
        return {}
    rng = random.Random(f"tiny-world-facts/{config.fact_seed}")
    m_lo, m_hi = config.product_m_range
    table = {}
    for item in world_items(config):
        sizes = rng.sample(range(m_lo, m_hi + 1), config.containers)
        table.update({(item, c): size for c, size in zip(_CONTAINERS[:config.containers], sizes, strict=True)})
    return table


def problem_item(question: str) -> str:
    """The item a tiny-world question counts (its first clause: "<name> has <n> <item>")."""
    match = _ITEM.match(question)
    if match is None:
        raise ValueError(f"not a tiny-world question: {question[:60]!r}")
    return match.group(1)


def problem_facts(problem: TinyProblem, config: TinyWorldConfig) -> list[tuple[str, str]]:
    """The (item, container) facts a knowledge-world problem's product steps use, in order."""
    if not config.containers:
        return []
    item = problem_item(problem.question)
    by_size = {size: c for (i, c), size in fact_table(config).items() if i == item}
    return [(item, by_size[m]) for _, m in product_steps(problem)]


def product_steps(problem: TinyProblem) -> list[tuple[int, int]]:
    """The (k, m) of each "k packs of m" sub-step of a problem (a step that a later step takes as
    its amount, rather than as its running total), in order."""
    amounts = {node.right.ref for node in problem.nodes}
    return [(n.left.const, n.right.const) for i, n in enumerate(problem.nodes) if i in amounts]


def generate_problems(n: int, seed: int, split: str = "train", config: TinyWorldConfig | None = None) -> list[TinyProblem]:
    """``n`` distinct problems, a pure function of (seed, split, config).

    Raises ValueError, naming the knobs, when the world cannot be filled: ``MAX_MISSES`` draws in
    a row gave no new problem (every operation blocked, or every question already made).
    """
    stream = iter_problems(seed, split, config, want=n)
    return [next(stream) for _ in range(n)]


def iter_problems(seed: int, split: str = "train", config: TinyWorldConfig | None = None, want: int | None = None):
    """Distinct problems one by one, the same sequence as :func:`generate_problems` (whose first
    ``n`` they are), for callers that filter and cannot know ``n`` up front. ``want`` only words
    the error."""
    config = config or TinyWorldConfig()
    rng = random.Random(f"tiny-world/{seed}/{split}")
    seen, misses = set(), 0
    while True:
        problem = _try_problem(rng, config, f"tiny-{split}-{len(seen)}", split)
        if problem is not None and problem.question not in seen:
            seen.add(problem.question)
            misses = 0
            yield problem
        elif (misses := misses + 1) >= MAX_MISSES:
            raise ValueError(
                f"tiny world ({split}, seed {seed}): {MAX_MISSES} draws in a row made no new problem after "
                f"{len(seen)}{f' of {want}' if want else ''}; the world is too small for n or cannot be built: widen "
                f"tiny_world.start_range {config.start_range}, add_range {config.add_range}, mul_range "
                f"{config.mul_range} or max_value {config.max_value}, add ops {list(config.ops)}, or lower "
                f"min_ops {config.min_ops} / n_train, n_test")


def _try_problem(rng: random.Random, config: TinyWorldConfig, pid: str, split: str) -> TinyProblem | None:
    """One problem, built forwards: each operation is drawn among the ones that keep every number
    distinct and the running total in ``0..max_value``, so a long chain needs no rejection loop.
    ``None`` when some step has no such operation (the caller draws again)."""
    name, item = rng.choice(_NAMES), rng.choice(world_items(config))
    terse = config.style == "terse"
    total = rng.randint(*config.start_range)
    used = {total}  # every number stated or computed so far
    nodes: list[Node] = []
    sentences = [f"{name} has {total} {item}" + ("" if terse else ".")]
    current, n_products = Operand(const=total), 0
    for _ in range(rng.randint(config.min_ops, config.max_ops)):
        amounts = {op: _amounts(op, total, used, config) for op in config.ops}
        ops = [op for op in config.ops if amounts[op]]
        if not ops:
            return None
        op = rng.choice(ops)
        room = config.max_products is None or n_products < config.max_products
        products = _products(op, total, used, config, item) if op != "*" and room and rng.random() < config.p_product else []
        if products:
            n_products += 1
            k, m = rng.choice(products)
            nodes.append(Node("*", Operand(const=k), Operand(const=m), k * m))
            right, amount = Operand(ref=len(nodes) - 1), k * m
            used |= {k, m, k * m}
            if config.containers:  # the size is the fact the student must know
                container = next(c for (i, c), size in fact_table(config).items() if i == item and size == m)
                text = (_TERSE[op + "c"].format(k=k, container=container, item=item) if terse else
                        f"Then {name} " + (_KNOWN_GAIN if op == "+" else _KNOWN_LOSS).format(k=k, container=container, item=item) + ".")
            elif terse:
                text = _TERSE[op + "k"].format(k=k, m=m)
            else:
                text = rng.choice(_GAIN_GROUPS if op == "+" else _LOSS_GROUPS).format(k=k, m=m, item=item)
                text = f"Then {name} {text}."
        else:
            amount = rng.choice(amounts[op])
            right = Operand(const=amount)
            used.add(amount)
            if op == "*":
                text = _TERSE[amount] if terse else "Then " + name + " " + _MUL[amount].format(item=item) + "."
            elif terse:
                text = _TERSE[op].format(n=amount)
            else:
                text = f"Then {name} {rng.choice(_GAIN if op == '+' else _LOSS).format(n=amount, item=item)}."
        total = OPS[op](total, amount)
        used.add(total)
        nodes.append(Node(op, current, right, total))
        current = Operand(ref=len(nodes) - 1)
        sentences.append(text)
    if config.distractors[1]:  # drawn after the chain, so a world without them draws as before
        sentences = _with_distractors(rng, sentences, name, item, used, config)
        if sentences is None:
            return None
    if terse:
        question = ", ".join(sentences[:-1]) + (", then " if len(sentences) > 1 else "") + sentences[-1]
        question += f". How many {item} now?"
    else:
        question = " ".join(sentences + [f"How many {item} does {name} have now?"])
    steps = [render_step(node, nodes) for node in nodes] + [f"#### {nodes[-1].value}"]
    return TinyProblem(pid, question, tuple(nodes), join_steps(steps), split)


def _with_distractors(rng: random.Random, sentences: list[str], name: str, item: str, used: set[int],
                      config: TinyWorldConfig) -> list[str] | None:
    """``sentences`` with irrelevant clauses inserted after the first: another person's amount of
    the item, distinct from every number of the problem (so no step can use it by accident)."""
    lo, hi = config.add_range
    free = [n for n in range(max(lo, 2), hi + 1) if n not in used]
    count = rng.randint(*config.distractors)
    if len(free) < count:
        return None
    others = [n for n in _NAMES if n != name]
    out = list(sentences)
    for number in rng.sample(free, count):
        at = rng.randint(1, len(out) - 1)  # never first (the start) nor after the last operation
        who = rng.choice(others)  # terse clauses share the subject: the aside keeps it
        out.insert(at, f"sees {who} with {number} {item}" if config.style == "terse" else f"{who} has {number} {item}.")
    return out


def _fits(result: int, new: tuple[int, ...], used: set[int], config: TinyWorldConfig) -> bool:
    """``result`` is a total a step may reach, and it and the ``new`` numbers are distinct from
    each other and from every number ``used`` so far."""
    numbers = {*new, result}
    return 0 <= result <= config.max_value and len(numbers) == len(new) + 1 and not numbers & used


def _amounts(op: str, total: int, used: set[int], config: TinyWorldConfig) -> list[int]:
    """The stated amounts (or factors, for ``*``) that ``op`` can apply to ``total``."""
    lo, hi = config.mul_range if op == "*" else config.add_range
    return [a for a in range(lo, hi + 1) if (op != "*" or a in _MUL) and _fits(OPS[op](total, a), (a,), used, config)]


def _products(op: str, total: int, used: set[int], config: TinyWorldConfig, item: str) -> list[tuple[int, int]]:
    """The ("k packs of m") sub-steps whose product ``op`` can apply to ``total``; in a knowledge
    world m is the size of one of ``item``'s containers."""
    k_lo, k_hi = config.product_k_range or config.mul_range
    if config.containers:
        sizes = sorted(size for (i, _), size in fact_table(config).items() if i == item)
    else:
        m_lo, m_hi = config.product_m_range or (config.add_range[0] // 2 + 1, config.add_range[1] // 2 + 1)
        sizes = range(m_lo, m_hi + 1)
    # `_fits(apply(total, k * m), (k, m, k * m), used, config)` spelt out: this runs over every
    # (k, m) pair of every step (hundreds in a 999-world), and building sets for each pair made it
    # 90% of drawing a problem. Same pairs, same order (tests/unit/test_tiny_world.py).
    apply, top = OPS[op], config.max_value
    pairs = []
    for k in range(k_lo, k_hi + 1):
        if k in used:
            continue
        for m in sizes:
            p = k * m
            r = apply(total, p)
            if (0 <= r <= top and m != k and p != k and p != m and r != k and r != m and r != p
                    and m not in used and p not in used and r not in used):
                pairs.append((k, m))
    return pairs
