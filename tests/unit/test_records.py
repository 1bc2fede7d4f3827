"""Bad input names the file, the line and the field; nothing is skipped silently."""

import json

import pytest

from glore_ray.tasks.gsm8k import load_gsm8k
from glore_ray.tasks.records import DataError
from glore_ray.tasks.svamp import load_svamp


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_gsm8k(tmp_path / "nope.jsonl", "train")


def test_malformed_json_line_names_file_and_line(tmp_path):
    good = json.dumps({"question": "Q?", "answer": "1 + 1 = 2\n#### 2"})
    path = write_jsonl(tmp_path / "train.jsonl", [good, "{not json", good])
    with pytest.raises(DataError, match=r"train\.jsonl:2: malformed JSON"):
        load_gsm8k(path, "train")


def test_missing_and_mistyped_fields(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [json.dumps({"question": "Q?"})])
    with pytest.raises(DataError, match=r"a\.jsonl:1: missing field 'answer'"):
        load_gsm8k(path, "train")
    path = write_jsonl(tmp_path / "b.jsonl", [json.dumps({"question": 3, "answer": "#### 2"})])
    with pytest.raises(DataError, match=r"b\.jsonl:1: field 'question' must be str, got int"):
        load_gsm8k(path, "train")
    path = write_jsonl(tmp_path / "c.jsonl", [json.dumps({"question": "Q?", "answer": "two"})])
    with pytest.raises(DataError, match=r"c\.jsonl:1: .*no '#### <number>'"):
        load_gsm8k(path, "train")


def test_skip_bad_reports_how_many_and_which(tmp_path):
    good = json.dumps({"question": "Q?", "answer": "1 + 1 = 2\n#### 2"})
    path = write_jsonl(tmp_path / "t.jsonl", [good, json.dumps({"question": "Q?"}), good])
    rows, skipped = load_gsm8k(path, "train", skip_bad=True)
    assert len(rows) == 2 and len(skipped) == 1 and "t.jsonl:2" in skipped.reasons[0]


def test_svamp_bad_item(tmp_path):
    path = tmp_path / "SVAMP.json"
    path.write_text(json.dumps([{"ID": "x", "Body": "A b.", "Question": "How?", "Answer": "five"}]))
    with pytest.raises(DataError, match=r"SVAMP\.json\[0\]: field 'Answer' must be float, got str"):
        load_svamp(path, "train")
    path.write_text("{")
    with pytest.raises(DataError, match="malformed JSON"):
        load_svamp(path, "train")


def test_unknown_file_type(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_gsm8k(path, "train")
