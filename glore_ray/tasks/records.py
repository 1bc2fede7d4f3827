"""Reading task files with errors that name the file, the line and the field.

Nothing is skipped silently: a bad row raises ``DataError`` unless the caller passes
``skip_bad=True``, in which case the skipped rows are returned with their reasons so the caller
can report how many and which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Bad task data: the message names the file, the line (or item) and the field."""


@dataclass
class Skipped:
    """Rows a loader skipped on request, with the reason for each (``where: why``)."""

    reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.reasons)


def read_records(path: str | Path) -> list[tuple[str, dict]]:
    """``(where, record)`` pairs from a .jsonl, .json (a list) or .parquet file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{number}: malformed JSON line: {err.msg} (column {err.colno})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                out.append((f"{path}:{number}", record))
        return out
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: malformed JSON: {err.msg}") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
        return [(f"{path}[{i}]", r) for i, r in enumerate(data)]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(f"{path}[row {i}]", r) for i, r in enumerate(pq.read_table(path).to_pylist())]
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")


def require(record: dict, name: str, kind: type, where: str):
    """``record[name]`` checked to be of ``kind``; a ``DataError`` naming ``where`` otherwise."""
    if name not in record:
        raise DataError(f"{where}: missing field {name!r} (fields present: {sorted(record)})")
    value = record[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise DataError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__} {value!r:.60}")
    return value


def convert_all(records, convert, skip_bad: bool) -> tuple[list[dict], Skipped]:
    """Apply ``convert(where, record)`` to each record; collect failures if ``skip_bad``."""
    rows, skipped = [], Skipped()
    for where, record in records:
        try:
            rows.append(convert(where, record))
        except DataError as err:
            if not skip_bad:
                raise
            skipped.reasons.append(str(err))
    return rows, skipped
