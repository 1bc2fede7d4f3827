"""The HTTP contract of the GLoRe service: request, response and error bodies (OpenAPI comes
from these models). Static rules live here; rules that depend on the config (length limits, the
max_new_tokens cap) are checked by the ingress, which knows the config."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# Strict: "0.5" is not a number and "yes" is not a boolean; extra="forbid": an unknown option is an
# error, not a silently ignored typo.
_STRICT = ConfigDict(extra="forbid", strict=True)
# What the validators below enforce, stated in the schema (JSON Schema patterns search, so this one
# reads: no NUL anywhere, at least one character that is not whitespace).
_TEXT_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"


def _whole_number(value):
    # JSON Schema's "integer" includes 64.0 (a number with no fractional part), which strict
    # pydantic would reject; a string or a bool is still refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


PositiveWholeNumber = Annotated[int, Field(ge=1), BeforeValidator(_whole_number)]


def _text(value: str, name: str, hint: str = "") -> str:
    """The rule ``_TEXT_PATTERN`` states: not blank, no NUL (one message per failure)."""
    if not value.strip():
        raise ValueError(f"{name} is empty or only whitespace{hint}")
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    return value


class RefineOptions(BaseModel):
    """Per-request overrides of the policy (defaults: the service's `refine` config)."""

    model_config = _STRICT

    when_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Refine iff the ORM's final score of the draft is <= this.")
    where_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="The first step whose (S)ORM score is <= this is marked [BAD].")
    use_orm_for_where: bool | None = Field(
        None, description="Locate the bad step with the ORM instead of the SORM (paper 4.2 ablation).")
    max_new_tokens: PositiveWholeNumber | None = Field(
        None, description="Generation budget of the student and the refiners (capped by the service).")


class RefineRequest(BaseModel):
    """Refine a solution to a math word problem: the student drafts one unless `draft` is given."""

    model_config = _STRICT

    question: str = Field(..., description="The problem text: not blank, no NUL; the service caps its length (413).",
                          examples=["Tom has 4 apples and buys 5 more. ..."], json_schema_extra={"pattern": _TEXT_PATTERN})
    draft: str | None = Field(
        None, description="A draft solution, one step per line, last line `#### answer`; omitted: the student drafts. "
                          "Not blank, no NUL; the service caps its length (413).",
        json_schema_extra={"pattern": _TEXT_PATTERN})
    options: RefineOptions = Field(default_factory=RefineOptions)

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        return _text(value, "question")

    @field_validator("draft")
    @classmethod
    def _draft_has_steps(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, "draft", "; omit it to let the student draft")


class CandidateOut(BaseModel):
    """One solution the ORM reranked."""

    kind: Literal["draft", "global", "local"]
    text: str
    score: float = Field(..., description="The ORM's final score (its score at the last step).")
    step_scores: list[float] = Field(..., description="The ORM's score at every step.")
    answer: str | None = Field(..., description="The grader's extracted answer; null: none.")


class RefineResponse(BaseModel):
    """The chosen answer and the trace that explains it."""

    answer: str | None = Field(..., description="The chosen candidate's answer (grader's extract_answer).")
    chosen: CandidateOut
    candidates: list[CandidateOut] = Field(..., description="Draft first, then the refinements that ran.")
    refined: bool = Field(..., description="False: the ORM trusted the draft, so no refinement ran.")
    draft_score: float
    draft_source: Literal["student", "request"]
    bad_step: int | None = Field(..., description="0-based first bad step (None: not refined or none found).")
    where_model: Literal["sorm", "orm"] | None = Field(..., description="Which model located the bad step.")
    where_scores: list[float] = Field(..., description="That model's step scores of the draft.")
    options: RefineOptions = Field(..., description="The thresholds and budget actually used.")
    timings_ms: dict[str, float] = Field(
        ..., description="Per-stage wall time: draft, orm_draft, where, refine, orm_refinements, total.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    error: str = Field(..., description="What went wrong, in one line.")
    detail: list[dict] | None = Field(None, description="Per-field problems (location, message) for 422s.")


# ------------------------------------------------------------------------------------------
# /v1/score: step scores of given solutions (the step reward models as a service)


class ScoreOptions(BaseModel):
    """Per-request overrides of how the first bad step is located (defaults: the `refine` config)."""

    model_config = _STRICT

    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="The first step scored <= this is reported as first_bad_step.")
    use_orm_for_where: bool | None = Field(
        None, description="Locate the first bad step with the ORM's scores instead of the SORM's.")


class ScoreItem(BaseModel):
    """One solution to score: its question and the solution, one step per line."""

    model_config = _STRICT

    question: str = Field(..., description="The problem text: not blank, no NUL; length capped (413).",
                          json_schema_extra={"pattern": _TEXT_PATTERN})
    solution: str = Field(..., description="One step per line, last line `#### answer`: not blank, no NUL; "
                                           "length capped (413).", json_schema_extra={"pattern": _TEXT_PATTERN})

    @field_validator("question", "solution")
    @classmethod
    def _not_blank(cls, value: str, info) -> str:
        return _text(value, info.field_name)


class ScoreRequest(ScoreItem):
    """Score one solution."""

    options: ScoreOptions = Field(default_factory=ScoreOptions)


class ScoreBatchRequest(BaseModel):
    """Score several solutions in one request (the service caps how many: 413)."""

    model_config = _STRICT

    items: list[ScoreItem] = Field(..., min_length=1)
    options: ScoreOptions = Field(default_factory=ScoreOptions)


class StepScoresOut(BaseModel):
    """One solution's steps (split as the labels and the refiners split them) and their scores."""

    steps: list[str] = Field(..., description="The solution's non-empty lines, stripped; the answer line is the last.")
    orm: list[float] = Field(..., description="The ORM's score at every step.")
    sorm: list[float] = Field(..., description="The SORM's score at every step.")
    orm_final: float = Field(..., description="The ORM's score of the whole solution (its last step's).")
    first_bad_step: int | None = Field(..., description="0-based first step scored <= threshold; null: none.")


class ScoreResponse(BaseModel):
    """Step scores of every solution, in request order."""

    results: list[StepScoresOut]
    threshold: float = Field(..., description="The threshold used for first_bad_step.")
    where_model: Literal["sorm", "orm"] = Field(..., description="Whose scores located first_bad_step.")
    timings_ms: dict[str, float] = Field(..., description="Per-stage wall time: score (ORM and SORM together), total.")

