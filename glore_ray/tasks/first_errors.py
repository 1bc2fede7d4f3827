"""First-error records in ProcessBench's format (Zheng et al. 2024), read and written.

One record is ``{id, problem, steps: [str], final_answer_correct: bool, label: int}``: ``label``
is the 0-based index of the first wrong step, or -1 when every step is right. A file is a JSON
list of records (``.json``), or one record per line (``.jsonl``).

Our reward models read one score at the end of each line (docs/architecture.md §3), so a step is
scored as one line: newlines inside a step become spaces (:func:`solution_text`).

>>> r = FirstErrorRecord("a", "Ben has 7 coins, then gets 5.", ["7 + 5 = 12", "#### 12"], True, -1)
>>> solution_text(r.steps)
'7 + 5 = 12\\n#### 12\\n'
>>> first_error_label([1, 1, 0, 0]), first_error_label([1, 1])
(2, -1)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from glore_ray.artifacts import write_atomic
from glore_ray.tasks.records import DataError, read_records, require
from glore_ray.tasks.steps import join_steps


@dataclass(frozen=True)
class FirstErrorRecord:
    id: str
    problem: str
    steps: list[str]
    final_answer_correct: bool
    label: int  # first wrong step (0-based), -1: none

    def step_labels(self) -> list[int]:
        """1 for the steps before the first error, 0 from it on (all 1 when there is none)."""
        first = len(self.steps) if self.label < 0 else self.label
        return [1] * first + [0] * (len(self.steps) - first)

    def key(self) -> tuple[str, tuple[str, ...]]:
        """What makes two records the same solution, whatever their ids."""
        return self.problem, tuple(self.steps)


def first_error_label(step_labels: list[int]) -> int:
    """ProcessBench's label of a solution from its step labels: the first 0, or -1."""
    return next((i for i, y in enumerate(step_labels) if y == 0), -1)


def solution_text(steps: list[str]) -> str:
    """The steps as our solutions are written: one line each (inner newlines become spaces)."""
    return join_steps([" ".join(step.split()) for step in steps])


def parse_record(where: str, record: dict) -> FirstErrorRecord:
    rid = record.get("id", where)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise DataError(f"{where}: field 'id' must be a string or an integer, got {type(rid).__name__}")
    where = f"{where} (id {rid})"
    problem = require(record, "problem", str, where)
    steps = require(record, "steps", list, where)
    if not steps:
        raise DataError(f"{where}: field 'steps' is empty; a record needs at least one step")
    for i, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            raise DataError(f"{where}: field 'steps'[{i}] must be a non-blank string, got {step!r:.60}")
    correct = require(record, "final_answer_correct", bool, where)
    label = require(record, "label", int, where)
    if not -1 <= label < len(steps):
        raise DataError(f"{where}: field 'label' is {label}, out of range for {len(steps)} steps "
                        f"(the first wrong step's 0-based index, or -1 for none)")
    return FirstErrorRecord(str(rid), problem, list(steps), correct, label)


def read_first_error_records(path: str | Path) -> list[FirstErrorRecord]:
    """Every record of a ``.json`` list or ``.jsonl`` file; a bad one raises ``DataError`` naming
    the file, the record and the field. Duplicate ids are refused (results are keyed by id)."""
    records = [parse_record(where, r) for where, r in read_records(path)]
    if not records:
        raise DataError(f"{path}: no records")
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise DataError(f"{path}: id {r.id!r} appears more than once")
        seen.add(r.id)
    return records


def write_first_error_records(path: str | Path, records: list[FirstErrorRecord]) -> Path:
    """A JSON list, written whole and then renamed into place: never read half-written."""
    text = json.dumps([asdict(r) for r in records], indent=1)
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
