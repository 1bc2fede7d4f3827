"""The tiny world: GSM8K-shaped word problems whose computation graph is known (DESIGN §8).

Each problem is a small DAG of integer operations over numbers stated in the question. A
solution writes one operation per line, ``a op b = c``, then ``#### answer``. Because the graph is
known, the *exact* V* label of every prefix is computable: a prefix is valid iff each of its steps
applies a not-yet-computed operation of the graph, to operands already available (numbers from
the question or results of earlier steps), with correct arithmetic. That is the ground truth the
paper could only hand-label for 257 steps (App. G).

Every number in a problem (stated or computed) is distinct, so a step's text names its graph
node unambiguously.

>>> p = generate_problems(1, seed=0, split="train")[0]
>>> first_invalid_step(p, p.reference) is None
True
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field

from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import is_answer_step, join_steps, split_steps

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
COMMUTATIVE = {"+", "*"}
_STEP = re.compile(r"^(0|[1-9]\d*) ([+\-*]) (0|[1-9]\d*) = (0|-?[1-9]\d*)$")


@dataclass(frozen=True)
class Operand:
    """A number stated in the question (``const``) or the result of node ``ref``."""

    const: int | None = None
    ref: int | None = None


@dataclass(frozen=True)
class Node:
    op: str
    left: Operand
    right: Operand
    value: int


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
    ops: tuple[str, ...] = ("+", "-", "*")
    style: str = "story"  # story: a sentence per operation; terse: one sentence of short clauses

    def __post_init__(self):
        if self.style not in ("story", "terse"):
            raise ValueError(f"tiny_world.style must be story or terse, got {self.style!r}")
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"tiny_world: need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        for name in ("start_range", "add_range", "mul_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"tiny_world.{name}: need 0 < lo <= hi, got {(lo, hi)}")
        if unknown := set(self.ops) - set(OPS):
            raise ValueError(f"tiny_world.ops: unknown operations {sorted(unknown)}; known: {sorted(OPS)}")


@dataclass(frozen=True)
class TinyProblem:
    id: str
    question: str
    nodes: tuple[Node, ...]
    reference: str
    split: str = "train"
    answer: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "answer", str(self.nodes[-1].value))

    def meta(self) -> str:
        """The computation graph as JSON, stored in the question row's ``meta`` column."""
        return json.dumps([asdict(n) for n in self.nodes])

    @classmethod
    def from_row(cls, row: dict) -> TinyProblem:
        nodes = tuple(
            Node(n["op"], Operand(**n["left"]), Operand(**n["right"]), n["value"]) for n in json.loads(row["meta"])
        )
        return cls(row["id"], row["question"], nodes, row["reference"], row.get("split", "train"))

    def to_row(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "reference": self.reference,
            "answer": self.answer,
            "split": self.split,
            "meta": self.meta(),
        }


# --------------------------------------------------------------------------------------------
# Generation

_NAMES = ["Ava", "Ben", "Cora", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Max", "Nia"]
_ITEMS = ["apples", "marbles", "stamps", "coins", "shells", "cards", "books", "pens", "beads", "rocks"]
_GAIN = ["finds {n} more {item}", "buys {n} more {item}", "gets {n} {item} from a friend", "wins {n} {item}"]
_LOSS = ["gives away {n} {item}", "loses {n} {item}", "sells {n} {item}", "uses {n} {item}"]
_GAIN_GROUPS = ["buys {k} bags with {m} {item} in each", "gets {k} boxes of {m} {item}"]
_LOSS_GROUPS = ["gives {k} friends {m} {item} each", "packs {k} jars with {m} {item} each and sells them"]
_MUL = {2: "doubles the {item}", 3: "triples the {item}", 4: "ends up with 4 times as many {item}"}
# Terse clauses: the same graph in about half the tokens, so a tiny model spends its capacity on
# the arithmetic rather than on finding the numbers in a long story (DESIGN §8).
_TERSE = {"+": "gets {n} more", "-": "loses {n}", "+k": "gets {k} packs of {m}", "-k": "gives away {k} packs of {m}",
          2: "doubles them", 3: "triples them", 4: "gets 4 times as many"}


def generate_problems(n: int, seed: int, split: str = "train", config: TinyWorldConfig | None = None) -> list[TinyProblem]:
    """``n`` distinct problems, a pure function of (seed, split, config)."""
    config = config or TinyWorldConfig()
    rng = random.Random(f"tiny-world/{seed}/{split}")
    problems, seen = [], set()
    while len(problems) < n:
        problem = _try_problem(rng, config, f"tiny-{split}-{len(problems)}", split)
        if problem is not None and problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems


def _try_problem(rng: random.Random, config: TinyWorldConfig, pid: str, split: str) -> TinyProblem | None:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    value = rng.randint(*config.start_range)
    nodes: list[Node] = []
    terse = config.style == "terse"
    sentences = [f"{name} has {value} {item}" + ("" if terse else ".")]
    current = Operand(const=value)
    for _ in range(rng.randint(config.min_ops, config.max_ops)):
        op = rng.choice(config.ops)
        if op == "*":
            k = rng.randint(*config.mul_range)
            if k not in _MUL:
                return None
            right = Operand(const=k)
            text = _TERSE[k] if terse else "Then " + name + " " + _MUL[k].format(item=item) + "."
        elif rng.random() < config.p_product:
            k, m = rng.randint(*config.mul_range), rng.randint(*config.add_range) // 2 + 1
            nodes.append(Node("*", Operand(const=k), Operand(const=m), k * m))
            right = Operand(ref=len(nodes) - 1)
            if terse:
                text = _TERSE[op + "k"].format(k=k, m=m)
            else:
                text = rng.choice(_GAIN_GROUPS if op == "+" else _LOSS_GROUPS).format(k=k, m=m, item=item)
                text = f"Then {name} {text}."
        else:
            amount = rng.randint(*config.add_range)
            right = Operand(const=amount)
            if terse:
                text = _TERSE[op].format(n=amount)
            else:
                text = f"Then {name} {rng.choice(_GAIN if op == '+' else _LOSS).format(n=amount, item=item)}."
        left_value = _value(current, nodes)
        result = OPS[op](left_value, _value(right, nodes))
        if not 0 <= result <= config.max_value:
            return None
        nodes.append(Node(op, current, right, result))
        current = Operand(ref=len(nodes) - 1)
        sentences.append(text)
    if not _all_numbers_distinct(nodes):
        return None
    if terse:
        question = ", ".join(sentences[:-1]) + (", then " if len(sentences) > 1 else "") + sentences[-1]
        question += f". How many {item} now?"
    else:
        question = " ".join(sentences + [f"How many {item} does {name} have now?"])
    steps = [render_step(node, nodes) for node in nodes] + [f"#### {nodes[-1].value}"]
    return TinyProblem(pid, question, tuple(nodes), join_steps(steps), split)


def _value(operand: Operand, nodes: list[Node] | tuple[Node, ...]) -> int:
    return operand.const if operand.ref is None else nodes[operand.ref].value


def _all_numbers_distinct(nodes: list[Node]) -> bool:
    numbers = [o.const for n in nodes for o in (n.left, n.right) if o.ref is None] + [n.value for n in nodes]
    return len(numbers) == len(set(numbers))


def render_step(node: Node, nodes, swap: bool = False) -> str:
    a, b = _value(node.left, nodes), _value(node.right, nodes)
    if swap:
        a, b = b, a
    return f"{a} {node.op} {b} = {node.value}"


# --------------------------------------------------------------------------------------------
# The exact oracle


def parse_step(step: str) -> tuple[int, str, int, int] | None:
    """``'12 + 5 = 17' -> (12, '+', 5, 17)``; ``None`` for anything else (canonical form only)."""
    match = _STEP.match(step.strip())
    if not match:
        return None
    a, op, b, c = match.groups()
    return int(a), op, int(b), int(c)


def _match_node(problem: TinyProblem, parsed, done: set[int]) -> int | None:
    a, op, b, c = parsed
    for idx, node in enumerate(problem.nodes):
        if idx in done or node.op != op or node.value != c:
            continue
        if any(o.ref is not None and o.ref not in done for o in (node.left, node.right)):
            continue  # an operand is a result not computed yet
        x, y = _value(node.left, problem.nodes), _value(node.right, problem.nodes)
        if (a, b) == (x, y) or (op in COMMUTATIVE and (a, b) == (y, x)):
            return idx
    return None


def step_validity(problem: TinyProblem, steps: list[str]) -> list[bool]:
    """Validity of every prefix: ``out[i]`` is True iff steps[0..i] is a valid prefix.

    Once a step is invalid every longer prefix is invalid too. The answer line is valid iff the
    prefix before it is valid and it states the right answer; any line after it is invalid.
    """
    done: set[int] = set()
    out, ok, answered = [], True, False
    for step in steps:
        if ok and not answered and is_answer_step(step):
            ok, answered = is_correct(step, problem.answer), True
        elif ok and not answered:
            parsed = parse_step(step)
            idx = _match_node(problem, parsed, done) if parsed else None
            ok = idx is not None
            if ok:
                done.add(idx)
        else:
            ok = False
        out.append(ok)
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
