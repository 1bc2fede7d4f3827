"""The stepwise layout (issue 19, item 4): our step-label rows out to Parquet and back exactly,
loadable by ``datasets``, and a table made elsewhere refused row by row when it is malformed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glore_ray.labeling.stepwise import SCHEMA, read_stepwise, write_stepwise
from glore_ray.tasks.records import DataError

ROWS = [{"question_id": "q1", "prompt": "Q: Ava has 3.\nA: ", "solution": "3 + 4 = 7\n7 * 2 = 14\n#### 14\n",
         "labels": [1, -1, 0]},
        {"question_id": "q2", "prompt": "Q: Ben has 7.\nA: ", "solution": "#### 7\n", "labels": [1]}]


def test_rows_go_out_and_come_back_exactly(tmp_path):
    path = write_stepwise(tmp_path / "steps.parquet", ROWS)
    assert pq.read_schema(path).equals(SCHEMA)
    assert read_stepwise(path) == ROWS
    assert read_stepwise(tmp_path) == ROWS  # a directory of .parquet files
    assert not list(tmp_path.glob(".tmp-*"))  # written whole, then renamed


def test_soft_labels_go_out_as_floats_and_come_back(tmp_path):
    soft = [dict(ROWS[0], labels=[0.625, -1, 0.0]), dict(ROWS[1], labels=[1.0])]
    path = write_stepwise(tmp_path / "soft.parquet", soft, soft=True)
    assert pq.read_schema(path).field("labels").type == pa.list_(pa.float64())
    assert pq.read_table(path).column("labels").to_pylist() == [[0.625, None, 0.0], [1.0]]
    assert read_stepwise(path) == soft


def test_datasets_loads_the_table_in_the_common_layout(tmp_path):
    datasets = pytest.importorskip("datasets")  # the dev extra installs it; a user may have any version
    path = write_stepwise(tmp_path / "steps.parquet", ROWS)
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds[0]["completions"] == ["3 + 4 = 7", "7 * 2 = 14", "#### 14"]
    assert ds[0]["labels"] == [True, None, False] and ds[1]["labels"] == [True]


def test_a_table_made_elsewhere_without_question_ids_trains_per_prompt(tmp_path):
    path = tmp_path / "theirs.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": p, "completions": c, "labels": y}) for p, c, y in [
        ("Q: a\nA: ", ["1 + 1 = 2", "#### 2"], [True, True]), ("Q: b\nA: ", ["2 + 2 = 5"], [0])]) + "\n")
    rows = read_stepwise(path)
    assert [r["labels"] for r in rows] == [[1, 1], [0]] and rows[1]["solution"] == "2 + 2 = 5\n"
    assert rows[0]["question_id"] != rows[1]["question_id"] and rows[0]["question_id"].startswith("prompt-")


@pytest.mark.parametrize("bad, message", [
    ({"labels": [True]}, r"theirs.parquet\[row 0\]: 2 completions but 1 labels"),
    ({"labels": [1.0, 1.5]}, r"\[row 0\]: field 'labels'\[1\] must be a boolean, a soft label in \[0, 1\] or null .*1.5"),
    ({"completions": ["a = 1\nb = 2", "#### 2"]}, r"field 'completions'\[0\] must be a non-blank one-line string"),
    ({"completions": []}, r"field 'completions' is empty"),
    ({"prompt": None}, r"\[row 0\]: field 'prompt' must be str, got NoneType"),
])
def test_malformed_rows_are_refused_naming_the_row_and_field(tmp_path, bad, message):
    row = {"prompt": "Q: a\nA: ", "completions": ["1 + 1 = 2", "#### 2"], "labels": [True, True], **bad}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "theirs.parquet")
    with pytest.raises(DataError, match=message):
        read_stepwise(tmp_path / "theirs.parquet")


def test_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(DataError, match="no .parquet files"):
        read_stepwise(tmp_path)
