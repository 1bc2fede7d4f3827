"""SVAMP (Patel et al., 2021): question = Body + Question; numeric Answer; no reference chain of
thought (paper 3.1: the first EI dataset is bootstrapped with a 1-shot prompt instead).

SVAMP ships no train/test split; the hub copy most used (``ChilleD/SVAMP``) has 700/300. For a
local SVAMP.json we make a deterministic split by item ID (a stable hash), 30% test.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
from pathlib import Path

from glore_ray.tasks.grading import normalize_answer
from glore_ray.tasks.records import DataError, Skipped, convert_all, read_records, require

HUB_ID = "ChilleD/SVAMP"
TEST_FRACTION = 0.3
_BIN_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def svamp_question(body: str, question: str) -> str:
    """Join Body and Question into one well-formed sentence sequence.

    Bodies often end mid-sentence ("If there is a discount of 25 dollars on each pack"), so a
    body without final punctuation is joined with a comma and the question's first letter is
    lower-cased; ``$ 3`` becomes ``$3``.
    """
    body, question = " ".join(body.split()), " ".join(question.split())
    if body and body[-1] not in ".?!":
        question = question[:1].lower() + question[1:]
        text = f"{body}, {question}"
    else:
        text = f"{body} {question}".strip()
    return re.sub(r"\$ (\d)", r"$\1", text)


def evaluate_equation(equation: str) -> float:
    """Evaluate an SVAMP Equation such as ``( 76.0 - 25.0 )`` without ``eval``."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            return _BIN_OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"unsupported expression {ast.dump(node)}")

    return walk(ast.parse(equation.strip(), mode="eval"))


def split_of(item_id: str) -> str:
    digest = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16)
    return "test" if digest / 0xFFFFFFFF < TEST_FRACTION else "train"


def svamp_row(where: str, record: dict, split: str | None = None) -> dict:
    item_id = str(record.get("ID", record.get("id", where)))
    body = require(record, "Body", str, where)
    question = require(record, "Question", str, where)
    answer = require(record, "Answer", float, where)
    if not question.strip():
        raise DataError(f"{where}: field 'Question' is empty")
    meta = {"equation": record.get("Equation", ""), "type": record.get("Type", "")}
    return {"id": f"svamp-{item_id}", "question": svamp_question(body, question), "reference": "",
            "answer": normalize_answer(repr(answer)), "split": split or split_of(item_id), "meta": json.dumps(meta)}


def load_svamp(source: str | Path, split: str, skip_bad: bool = False) -> tuple[list[dict], Skipped]:
    """Rows of ``split`` from SVAMP.json (or a folder holding it), or the hub id."""
    path = Path(source)
    if path.is_dir():
        path = path / "SVAMP.json"
    if path.exists() or str(source).endswith((".json", ".jsonl", ".parquet")):
        rows, skipped = convert_all(read_records(path), svamp_row, skip_bad)
        return [r for r in rows if r["split"] == split], skipped
    from glore_ray.tasks.gsm8k import hub_records

    records = hub_records(str(source), None, split)
    return convert_all(records, lambda w, r: svamp_row(w, r, split), skip_bad)
