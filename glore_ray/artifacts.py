"""Stage outputs on disk: atomic Parquet shards, manifests, resume (docs/architecture.md §2).

Every stage writes under ``<run_dir>/<stage>/``. A stage is *done* when its ``manifest.json``
exists; the manifest records the config digest, the inputs, row counts and timings. Tables are
written as numbered Parquet shards, each first to a temporary name and then renamed, so a shard
that exists is complete and an interrupted stage redoes only the missing shards. A stage
started under another config refuses to mix outputs: it says so and names the directory.

>>> import tempfile
>>> stage = Stage(tempfile.mkdtemp(), "data", digest="abc")
>>> stage.write_shard("questions", 0, [{"id": "q0"}])
>>> [r["id"] for r in stage.read_table("questions")]
['q0']
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
STARTED = "started.json"


def hash_file(hasher, path: str | os.PathLike) -> None:
    """Feed ``path``'s bytes to ``hasher`` in 1 MiB chunks: a user's data file may not fit in memory."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)


def write_atomic(path: str | os.PathLike, write) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it into place: a file that
    exists is complete, whatever killed the writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    write(tmp)
    os.replace(tmp, path)
    return path


class StageError(RuntimeError):
    """A stage directory that cannot be used as asked (other config, missing input, ...)."""


class Stage:
    """One stage's directory: shards, checkpoints and a manifest."""

    def __init__(self, run_dir: str | os.PathLike, name: str, digest: str, force: bool = False):
        self.name, self.digest = name, digest
        self.run_dir = Path(run_dir).resolve()  # absolute: Ray workers run in other directories
        self.dir = self.run_dir / name
        self._t0 = time.time()
        started = self._read_json(STARTED)
        if force and self.dir.exists():
            shutil.rmtree(self.dir)
        elif started is not None and started.get("digest") != digest:
            raise StageError(
                f"{self.dir}: holds outputs of another config (digest {started.get('digest')} != {digest}); "
                "use a new run_dir, or force=True (--force) to discard them"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / STARTED).exists():
            self._write_json(STARTED, {"digest": digest, "started": time.time()})

    # ---- state
    @property
    def done(self) -> bool:
        return (self.dir / MANIFEST).exists()

    @property
    def manifest(self) -> dict:
        manifest = self._read_json(MANIFEST)
        if manifest is None:
            raise StageError(f"{self.dir}: stage {self.name!r} has not finished (no {MANIFEST})")
        return manifest

    def finish(self, counts: dict, inputs: dict | None = None, extra: dict | None = None) -> dict:
        """Mark the stage done; the manifest is the last thing written."""
        manifest = {
            "stage": self.name,
            "digest": self.digest,
            "inputs": inputs or {},
            "counts": counts,
            "seconds": round(time.time() - self._t0, 2),
            "finished": time.time(),
            **(extra or {}),
        }
        self._write_json(MANIFEST, manifest)
        return manifest

    # ---- tables
    def table_dir(self, table: str) -> Path:
        return self.dir / table

    def shard_path(self, table: str, index: int) -> Path:
        return self.table_dir(table) / f"part-{index:05d}.parquet"

    def has_shard(self, table: str, index: int) -> bool:
        return self.shard_path(table, index).exists()

    def write_shard(self, table: str, index: int, rows: list[dict] | pa.Table, schema: pa.Schema | None = None) -> None:
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
        write_atomic(self.shard_path(table, index), lambda tmp: pq.write_table(data, tmp))

    def write_table(self, table: str, rows: list[dict], schema: pa.Schema | None = None) -> None:
        """A whole table as one shard (for small tables)."""
        self.write_shard(table, 0, rows, schema)

    def read_table(self, table: str) -> list[dict]:
        return read_table(self.table_dir(table))

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def write_json(self, name: str, data) -> Path:
        return self._write_json(name, data)

    # ---- helpers
    def _read_json(self, name: str):
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else None

    def _write_json(self, name: str, data) -> Path:
        return write_atomic(self.dir / name, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def shard_files(directory: str | os.PathLike) -> list[Path]:
    """The complete shards of a table, in order (temporary files are never listed)."""
    return sorted(Path(directory).glob("part-*.parquet"))


def read_table(directory: str | os.PathLike) -> list[dict]:
    files = shard_files(directory)
    if not files:
        raise StageError(f"{directory}: no Parquet shards (has the stage that writes it run?)")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pylist()


def stage_table(run_dir: str | os.PathLike, stage: str, table: str) -> list[dict]:
    """Table ``table`` of the finished stage ``stage`` (a clear error when the stage has not run).
    Stages call their producer's accessor (``stages.labels.orm_table`` ...), which calls this."""
    require_done(run_dir, stage)
    return read_table(Path(run_dir) / stage / table)


def require_done(run_dir: str | os.PathLike, stage: str) -> dict:
    """The manifest of an input stage, or a clear error saying which stage to run first."""
    path = Path(run_dir) / stage / MANIFEST
    if not path.exists():
        raise StageError(f"{path.parent}: input stage {stage!r} has not finished; run jobs/{stage}.py first")
    return json.loads(path.read_text())
