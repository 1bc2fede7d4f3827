"""A tiny-world problem and its computation graph, and the one line format its steps are written in.

Shared by the generator (``tiny_world``) and the exact oracle (``tiny_oracle``), which reads the
steps a model wrote back against the graph.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

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


def operand_value(operand: Operand, nodes: list[Node] | tuple[Node, ...]) -> int:
    return operand.const if operand.ref is None else nodes[operand.ref].value


def render_step(node: Node, nodes, swap: bool = False) -> str:
    a, b = operand_value(node.left, nodes), operand_value(node.right, nodes)
    if swap:
        a, b = b, a
    return f"{a} {node.op} {b} = {node.value}"


def parse_step(step: str) -> tuple[int, str, int, int] | None:
    """``'12 + 5 = 17' -> (12, '+', 5, 17)``; ``None`` for anything else (canonical form only)."""
    match = _STEP.match(step.strip())
    if not match:
        return None
    a, op, b, c = match.groups()
    return int(a), op, int(b), int(c)
