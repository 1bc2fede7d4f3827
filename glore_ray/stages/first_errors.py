"""First-error evaluation of any reward model on ProcessBench-format records (Zheng et al. 2024).

Not a pipeline stage: ``jobs/first_errors.py`` runs it on any checkpoint and any records, and the
evaluate stage calls :func:`calibrated_first_errors` on the tiny world's test drafts.

The predicted first error of a solution is the first step scored ``<= τ`` (none: -1), as
``decide.where.first_bad_step`` finds it for the service. ``τ`` is fixed by the caller or chosen
on a calibration set (:func:`~glore_ray.metrics.first_error_threshold`), never on the records
being scored: the same file, or any solution present in both, is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from glore_ray.artifacts import hash_file, write_atomic
from glore_ray.decide.where import first_bad_step
from glore_ray.metrics import first_error_f1, first_error_threshold
from glore_ray.stages.common import by_question
from glore_ray.stages.student import final_round, round_table
from glore_ray.tasks.first_errors import (
    FirstErrorRecord,
    first_error_label,
    read_first_error_records,
    solution_text,
    write_first_error_records,
)
from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.records import DataError
from glore_ray.tasks.steps import split_steps
from glore_ray.tasks.tiny_oracle import exact_step_labels
from glore_ray.tasks.tiny_world import TinyProblem


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
    lines = []
    for r, s in zip(records, scores, strict=True):
        predicted = first_bad_step(s, threshold)
        lines.append(json.dumps({"id": r.id, "label": r.label, "predicted": -1 if predicted is None else predicted,
                                 "scores": s}) + "\n")
    return write_atomic(path, lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The tiny world's records, for the evaluate stage


def calibrated_first_errors(stage, run: Path, drafts, labels, test, rms: dict[str, str], draft_scores, scorer) -> dict:
    """Issue 19's first-error evaluation on the tiny world: the test drafts written in ProcessBench's
    format from the exact oracle (``first_errors/test_drafts.json``), τ chosen per reward model on
    a calibration file of other solutions (``first_errors/calibration.json``), and each model's F1
    on the drafts at its τ: what ``jobs/first_errors.py`` prints for any checkpoint."""
    records = [_first_error_record(test[d["question_id"]], labels[d["question_id"]]["solution"], d["correct"])
               for d in drafts]
    calibration = calibration_records(run, drafts, labels, test)
    records_path = write_first_error_records(stage.path("first_errors", "test_drafts.json"), records)
    calibration_path = write_first_error_records(stage.path("first_errors", "calibration.json"), calibration)
    check_disjoint(records_path, records, calibration_path, calibration)
    out = {}
    for kind, path in rms.items():
        cal_scores = score_records(lambda prompts, solutions, path=path: scorer(path, prompts, solutions), calibration)
        tau = first_error_threshold(cal_scores, [r.step_labels() for r in calibration])["threshold"]
        out[kind] = first_error_summary(records, draft_scores[kind], tau) | {"n_calibration": len(calibration)}
    return out


def calibration_records(run: Path, drafts, labels, test) -> list:
    """Per test question, the final student's first temperature-1 test sample whose steps differ
    from its greedy draft's: other solutions of the same questions, so τ is never tuned on the
    drafts it is then scored on (the questions are shared; the tiny world has no third split)."""
    samples = by_question(round_table(run, final_round(run), "eval_samples"))
    out = []
    for d in drafts:
        q = d["question_id"]
        draft_steps = split_steps(labels[q]["solution"])
        for s in sorted(samples.get(q, []), key=lambda s: s["sample_index"]):
            steps = split_steps(s["text"])
            if steps and steps != draft_steps:
                out.append(_first_error_record(test[q], s["text"], s["correct"], f"{q}/sample-{s['sample_index']}"))
                break
    return out


def _first_error_record(question: dict, solution: str, correct: bool, rid: str | None = None) -> FirstErrorRecord:
    """A solution of a tiny-world question as a record, labelled by the exact oracle."""
    exact = exact_step_labels(TinyProblem.from_row(question), solution)
    return FirstErrorRecord(rid or question["id"], question["question"], split_steps(solution), bool(correct),
                            first_error_label(exact))




def _digest(path: Path) -> str:
    h = hashlib.sha256()
    hash_file(h, path)
    return h.hexdigest()
