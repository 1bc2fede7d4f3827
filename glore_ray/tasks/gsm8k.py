"""GSM8K (Cobbe et al., 2021): question rows from a local file or the Hugging Face hub.

Reference solutions keep their ``<<expr=result>>`` calculator annotations; ``answer`` is the
normalised number after ``####``.
"""

from __future__ import annotations

from pathlib import Path

from glore_ray.tasks.grading import extract_answer, normalize_answer
from glore_ray.tasks.records import DataError, Skipped, convert_all, read_records, require

HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"


def gsm8k_row(where: str, record: dict, split: str, index: int) -> dict:
    question = require(record, "question", str, where).strip()
    solution = require(record, "answer", str, where)
    if not question:
        raise DataError(f"{where}: field 'question' is empty")
    answer = normalize_answer(extract_answer(solution)) if "####" in solution else None
    if answer is None:
        raise DataError(f"{where}: field 'answer' has no '#### <number>' final answer: {solution[-60:]!r}")
    reference = solution.replace("####", "\n####").replace("\n\n####", "\n####").strip() + "\n"
    return {"id": f"gsm8k-{split}-{index}", "question": question, "reference": reference,
            "answer": answer, "split": split, "meta": ""}


def load_gsm8k(source: str | Path, split: str, skip_bad: bool = False) -> tuple[list[dict], Skipped]:
    """Rows of one split. ``source``: a .jsonl/.parquet file, a folder holding ``{split}.jsonl``,
    or the hub id ``openai/gsm8k`` (needs the ``datasets`` package and network)."""
    records = _records(source, split)
    indexed = [(where, (i, r)) for i, (where, r) in enumerate(records)]
    return convert_all(indexed, lambda w, ir: gsm8k_row(w, ir[1], split, ir[0]), skip_bad)


def _records(source, split):
    path = Path(source)
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if path.exists() or str(source).endswith((".jsonl", ".json", ".parquet")):
        return read_records(path)
    return hub_records(str(source), HUB_CONFIG if str(source) == HUB_ID else None, split)


def hub_records(hub_id: str, config: str | None, split: str) -> list[tuple[str, dict]]:
    """Records of a Hugging Face dataset split, labelled ``hub_id[split][i]`` for errors."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{hub_id}: not a local file, and loading from the hub needs `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as err:  # the hub raises many types; say which source failed and why
        raise DataError(f"{hub_id}: could not load split {split!r} from the hub: {err}") from None
    return [(f"{hub_id}[{split}][{i}]", r) for i, r in enumerate(ds)]
