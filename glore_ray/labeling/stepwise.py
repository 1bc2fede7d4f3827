"""Step labels in the common stepwise layout: one row per solution with ``prompt``,
``completions`` (the list of steps) and ``labels`` (one per step), as Parquet that
``datasets.load_dataset("parquet", ...)`` loads.

Our rows keep the solution as text (one step per line) and label each step 1, 0 or -1
(``IGNORE_STEP``: balanced away, paper 3.1 (3)), or with soft labels a share in [0, 1]. In the
layout a hard label is a boolean, a soft one a float, and a step without one is null, so the
balanced table goes out and comes back exactly. ``question_id`` rides
along as an extra column (training holds out by question); a table made elsewhere may leave it
out, and then each prompt is its own question.

>>> row = {"question_id": "q1", "prompt": "Q: ...\\nA: ", "solution": "2 + 3 = 5\\n#### 5\\n", "labels": [1, -1]}
>>> out = to_stepwise(row)
>>> out["completions"], out["labels"]
(['2 + 3 = 5', '#### 5'], [True, None])
>>> from_stepwise("here", out) == row
True
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from glore_ray.artifacts import write_atomic
from glore_ray.labeling.sorm import IGNORE_STEP
from glore_ray.tasks.records import DataError, read_records, require
from glore_ray.tasks.steps import join_steps, split_steps

SCHEMA = pa.schema([("question_id", pa.string()), ("prompt", pa.string()),
                    ("completions", pa.list_(pa.string())), ("labels", pa.list_(pa.bool_()))])
SOFT_SCHEMA = SCHEMA.set(3, pa.field("labels", pa.list_(pa.float64())))


def to_stepwise(row: dict, soft: bool = False) -> dict:
    """One of our step-label rows (``question_id``, ``prompt``, ``solution``, ``labels``) in the
    layout; ``soft``: labels are shares in [0, 1], written as floats."""
    steps = split_steps(row["solution"])
    if len(steps) != len(row["labels"]):
        raise ValueError(f"question {row['question_id']}: {len(steps)} steps but {len(row['labels'])} labels")
    value = float if soft else bool
    return {"question_id": row["question_id"], "prompt": row["prompt"], "completions": steps,
            "labels": [None if y == IGNORE_STEP else value(y) for y in row["labels"]]}


def from_stepwise(where: str, record: dict) -> dict:
    """A row of the layout as one of ours; a bad row raises ``DataError`` naming it and the field."""
    prompt = require(record, "prompt", str, where)
    steps = require(record, "completions", list, where)
    labels = require(record, "labels", list, where)
    if not steps:
        raise DataError(f"{where}: field 'completions' is empty")
    for i, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip() or "\n" in step.strip():
            raise DataError(f"{where}: field 'completions'[{i}] must be a non-blank one-line string, got {step!r:.60}")
    if len(labels) != len(steps):
        raise DataError(f"{where}: {len(steps)} completions but {len(labels)} labels")
    qid = record.get("question_id")
    if qid is None:
        qid = "prompt-" + hashlib.sha256(prompt.encode()).hexdigest()[:16]
    elif not isinstance(qid, str):
        raise DataError(f"{where}: field 'question_id' must be a string, got {type(qid).__name__}")
    return {"question_id": qid, "prompt": prompt, "solution": join_steps([s.strip() for s in steps]),
            "labels": [_label(where, i, y) for i, y in enumerate(labels)]}


def _label(where: str, i: int, y) -> int | float:
    """A layout label as ours: null -> -1, a boolean or 0/1 -> 0/1, a soft share in [0, 1] kept."""
    if y is None:
        return IGNORE_STEP
    if isinstance(y, bool) or (isinstance(y, (int, float)) and y in (0, 1)):
        return int(y)
    if isinstance(y, float) and 0 < y < 1:
        return y
    raise DataError(f"{where}: field 'labels'[{i}] must be a boolean, a soft label in [0, 1] or null (no label), "
                    f"got {y!r}")


def write_stepwise(path: str | Path, rows: list[dict], soft: bool = False) -> Path:
    """The rows as one Parquet file in the layout (written whole, then renamed); ``soft``: float labels."""
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([to_stepwise(r, soft) for r in rows], schema=SOFT_SCHEMA if soft else SCHEMA)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_stepwise(path: str | Path) -> list[dict]:
    """Our rows from a stepwise table: a ``.parquet`` / ``.jsonl`` / ``.json`` file, or a directory
    of ``.parquet`` files (read in name order)."""
    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .parquet files in this directory")
    rows = [from_stepwise(where, r) for f in files for where, r in read_records(f)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows
