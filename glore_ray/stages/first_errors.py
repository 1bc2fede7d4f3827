"""First-error evaluation of any reward model on ProcessBench-format records (Zheng et al. 2024).

Not a pipeline stage: ``jobs/first_errors.py`` runs it on any checkpoint and any records, and the
evaluate stage calls :func:`first_error_summary` on the tiny world's test drafts.

The predicted first error of a solution is the first step scored ``<= τ`` (none: -1), as
``decide.where.first_bad_step`` finds it for the service. ``τ`` is fixed by the caller or chosen
on a calibration set (:func:`~glore_ray.metrics.first_error_threshold`), never on the records
being scored: the same file, or any solution present in both, is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from glore_ray.decide.where import first_bad_step
from glore_ray.metrics import first_error_f1, first_error_threshold
from glore_ray.tasks.first_errors import FirstErrorRecord, read_first_error_records, solution_text
from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.records import DataError


def score_records(score, records: list[FirstErrorRecord]) -> list[list[float]]:
    """Per-step scores of each record: ``score(prompts, solutions)`` is a reward model's
    ``score_steps`` (or a Ray fan-out of it); the prompt is the student's."""
    return score([student_prompt(r.problem) for r in records], [solution_text(r.steps) for r in records])


def first_error_summary(records: list[FirstErrorRecord], scores: list[list[float]], threshold: float) -> dict:
    """ProcessBench's numbers at ``threshold``: accuracy on the erroneous and on the correct
    records, their harmonic mean (F1), and how many records had steps cut past the context."""
    out = first_error_f1(scores, [r.step_labels() for r in records], threshold)
    out["threshold"] = threshold
    out["n_cut"] = sum(len(s) < len(r.steps) for r, s in zip(records, scores, strict=True))
    return out


def check_disjoint(records_path, records: list[FirstErrorRecord], calibration_path,
                   calibration: list[FirstErrorRecord]) -> None:
    """Refuse a calibration set that is, or shares a solution with, the records being scored:
    a threshold tuned on the scored records inflates their F1."""
    a, b = Path(records_path), Path(calibration_path)
    if a.resolve() == b.resolve() or _digest(a) == _digest(b):
        raise DataError(f"calibration file {b} is the records file {a}: τ must be chosen on other records")
    shared = {r.key() for r in calibration} & {r.key() for r in records}
    if shared:
        first = next(r.id for r in records if r.key() in shared)
        raise DataError(f"{len(shared)} solution(s) of {a} also appear in calibration file {b} (first: id "
                        f"{first!r}); τ must be chosen on other records")


def evaluate_first_errors(score, records_path, calibration_path=None, threshold: float | None = None,
                          predictions_path=None) -> dict:
    """Score ``records_path`` with ``score`` and report ProcessBench's metrics at ``threshold``,
    or at the τ that maximises F1 on ``calibration_path``. With ``predictions_path``, also writes
    each record's label, prediction and step scores (JSON lines, written whole then renamed)."""
    if (calibration_path is None) == (threshold is None):
        raise ValueError("give exactly one of a calibration file and a fixed threshold")
    records = read_first_error_records(records_path)
    calibration = None
    if calibration_path is not None:
        cal_records = read_first_error_records(calibration_path)
        check_disjoint(records_path, records, calibration_path, cal_records)
        calibration = first_error_threshold(score_records(score, cal_records),
                                            [r.step_labels() for r in cal_records])
        threshold = calibration["threshold"]
    scores = score_records(score, records)
    out = {"records": str(records_path), "n_records": len(records),
           **first_error_summary(records, scores, threshold)}
    if calibration is not None:
        out["calibration"] = {"file": str(calibration_path), "n_records": len(cal_records),
                              **{k: calibration[k] for k in ("f1", "erroneous", "clean")}}
    if predictions_path is not None:
        write_predictions(predictions_path, records, scores, threshold)
    return out


def write_predictions(path, records: list[FirstErrorRecord], scores: list[list[float]], threshold: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r, s in zip(records, scores, strict=True):
            predicted = first_bad_step(s, threshold)
            f.write(json.dumps({"id": r.id, "label": r.label, "predicted": -1 if predicted is None else predicted,
                                "scores": s}) + "\n")
    tmp.replace(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
