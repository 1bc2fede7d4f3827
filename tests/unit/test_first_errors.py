"""First-error evaluation in ProcessBench's format (issue 19, item 3): the record format, the
refusals, and τ chosen on a calibration file, with a scorer that reads the steps' text."""

from __future__ import annotations

import json

import pytest

from glore_ray.metrics import first_error_f1
from glore_ray.stages.first_errors import evaluate_first_errors
from glore_ray.tasks.first_errors import (
    FirstErrorRecord,
    read_first_error_records,
    solution_text,
    write_first_error_records,
)
from glore_ray.tasks.records import DataError


def record(rid, steps, label, problem="Ava has 3 pens. How many?"):
    return {"id": rid, "problem": problem, "steps": steps, "final_answer_correct": label == -1, "label": label}


def write(path, records):
    path.write_text(json.dumps(records))
    return path


def text_scorer(prompts, solutions):
    """A step's score is written in it ("... (0.7)"): the test controls every score exactly."""
    return [[float(line.rsplit("(", 1)[1].rstrip(")")) for line in s.splitlines()] for s in solutions]


@pytest.mark.parametrize("bad, message", [
    ({"steps": "3 + 4 = 7"}, r"\[1\] \(id b\): field 'steps' must be list, got str"),
    ({"steps": []}, r"\[1\] \(id b\): field 'steps' is empty"),
    ({"steps": ["3 + 4 = 7", "  "]}, r"\[1\] \(id b\): field 'steps'\[1\] must be a non-blank string"),
    ({"label": 2}, r"\[1\] \(id b\): field 'label' is 2, out of range for 2 steps"),
    ({"label": -2}, r"field 'label' is -2, out of range"),
    ({"label": True}, r"field 'label' must be int, got bool"),
    ({"final_answer_correct": "yes"}, r"field 'final_answer_correct' must be bool"),
])
def test_bad_records_are_refused_naming_the_record_and_field(tmp_path, bad, message):
    good = record("b", ["3 + 4 = 7", "#### 7"], -1)
    path = write(tmp_path / "r.json", [record("a", ["#### 3"], -1), {**good, **bad}])
    with pytest.raises(DataError, match=message):
        read_first_error_records(path)


def test_missing_field_duplicate_id_and_empty_file_are_refused(tmp_path):
    r = record("a", ["#### 3"], -1)
    del r["steps"]
    with pytest.raises(DataError, match=r"r.json\[0\] \(id a\): missing field 'steps'"):
        read_first_error_records(write(tmp_path / "r.json", [r]))
    with pytest.raises(DataError, match=r"id 'a' appears more than once"):
        read_first_error_records(write(tmp_path / "d.json", [record("a", ["#### 3"], -1)] * 2))
    with pytest.raises(DataError, match=r"no records"):
        read_first_error_records(write(tmp_path / "e.json", []))


def test_records_round_trip_through_json_and_jsonl(tmp_path):
    records = [FirstErrorRecord("x", "Q?", ["a = 1", "b\nc = 2", "#### 2"], False, 1)]
    written = write_first_error_records(tmp_path / "out.json", records)
    assert read_first_error_records(written) == records
    assert not list(tmp_path.glob(".tmp-*"))  # written whole, then renamed
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in json.loads(written.read_text())) + "\n")
    assert read_first_error_records(jsonl) == records
    assert records[0].step_labels() == [1, 0, 0]
    assert solution_text(records[0].steps) == "a = 1\nb c = 2\n#### 2\n"  # one line per step


def test_tau_is_chosen_on_the_calibration_file_and_applied_to_the_records(tmp_path):
    # Calibration: every record is right for τ in [0.3, 0.4) and no τ outside it; the midpoint 0.35.
    cal = write(tmp_path / "cal.json", [record("c1", ["s (0.8)", "s (0.3)"], 1), record("c2", ["s (0.8)", "s (0.4)"], -1),
                                        record("c3", ["s (0.3)", "s (0.9)"], 0), record("c4", ["s (0.4)"], -1)])
    scored = [record("r1", ["t (0.8)", "t (0.33)"], 1), record("r2", ["t (0.9)", "t (0.38)"], -1),
              record("r3", ["t (0.2)"], 0), record("r4", ["t (0.6)", "t (0.7)"], -1)]
    path = write(tmp_path / "test.json", scored)
    out = evaluate_first_errors(text_scorer, path, calibration_path=cal, predictions_path=tmp_path / "p.jsonl")
    assert out["threshold"] == pytest.approx(0.35) and out["calibration"]["f1"] == 1.0
    assert (out["erroneous"], out["clean"], out["n_erroneous"], out["n_clean"]) == (1.0, 1.0, 2, 2)
    labels = [FirstErrorRecord(r["id"], r["problem"], r["steps"], r["final_answer_correct"], r["label"]).step_labels()
              for r in scored]
    expected = first_error_f1(text_scorer(None, [solution_text(r["steps"]) for r in scored]), labels, out["threshold"])
    assert {k: out[k] for k in ("erroneous", "clean", "f1")} == {k: expected[k] for k in ("erroneous", "clean", "f1")}
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["r1", "r2", "r3", "r4"] and predictions[2]["predicted"] == 0
    fixed = evaluate_first_errors(text_scorer, path, threshold=0.5)
    assert (fixed["threshold"], fixed["erroneous"], fixed["clean"]) == (0.5, 1.0, 0.5)  # r2 flagged at 0.38


def test_calibrating_on_the_records_scored_is_refused(tmp_path):
    scored = [record("r1", ["t (0.8)", "t (0.35)"], 1), record("r2", ["t (0.9)"], -1)]
    path = write(tmp_path / "test.json", scored)
    with pytest.raises(DataError, match="is the records file"):
        evaluate_first_errors(text_scorer, path, calibration_path=path)
    copy = write(tmp_path / "copy.json", scored)
    with pytest.raises(DataError, match="is the records file"):
        evaluate_first_errors(text_scorer, path, calibration_path=copy)
    # One shared solution under another id is enough: τ would be tuned on a scored record.
    mixed = write(tmp_path / "mixed.json", [record("other", ["t (0.9)"], -1), record("c", ["x (0.5)"], 0)])
    with pytest.raises(DataError, match=r"1 solution\(s\) of .*test.json also appear in calibration file .*first: id 'r2'"):
        evaluate_first_errors(text_scorer, path, calibration_path=mixed)
    with pytest.raises(ValueError, match="exactly one of"):
        evaluate_first_errors(text_scorer, path)
