"""HOW to refine, and the whole draft -> when -> where -> how -> rerank policy (paper 3.2, 4.2).

Paper 3.2: "sample both a global refinement A_GR and a local refinement A_LR for a draft A_D and
choose the best solution using the ORM reranker". The refiners' inputs (docs/architecture.md §3):

- global: ``Q: {question}\\nDraft:\\n{draft}\\nRefinement:\\n`` -> a whole new solution;
- local: the same, with ``[BAD]`` at the start of the first bad line -> the verified prefix (the
  steps before ``[BAD]``) and a new continuation; :func:`local_solution` re-attaches the prefix if
  a refiner emits only the continuation.

The policy is two pure steps so batch evaluation and the HTTP service share it:
``refine_plan`` (when + where, gives the refiner prompts) then ``decide`` (how: rerank the draft
and the refinements by their ORM scores).

>>> draft = make_candidate("draft", "1 + 1 = 3\\n#### 3", [0.2, 0.3])
>>> fixed = make_candidate("global", "1 + 1 = 2\\n#### 2", [0.8, 0.9])
>>> rerank([draft, fixed]).kind
'global'
>>> global_prompt("What is 1 + 1?", "1 + 1 = 3\\n#### 3")
'Q: What is 1 + 1?\\nDraft:\\n1 + 1 = 3\\n#### 3\\nRefinement:\\n'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from glore_ray.decide.when import final_score, should_refine
from glore_ray.decide.where import BAD_TOKEN, check_step_index, first_bad_step
from glore_ray.tasks.grading import extract_answer
from glore_ray.tasks.steps import join_steps, split_steps

# Rerank ties go to the cheapest, least-edited candidate first: the draft, then the global
# refinement, then the local one (a deterministic order, so evaluation is reproducible).
KINDS = ("draft", "global", "local")
REFINEMENT_KINDS = ("global", "local")


def global_prompt(question: str, draft: str) -> str:
    """The global refiner's input (docs/architecture.md §3), the draft written as its steps one per line: blank
    lines and stray indentation never change what the refiner sees, in training or in serving.

    >>> global_prompt("Q?", "2 + 2 = 5\\n\\n#### 5\\n")
    'Q: Q?\\nDraft:\\n2 + 2 = 5\\n#### 5\\nRefinement:\\n'
    """
    return f"Q: {question}\nDraft:\n" + "\n".join(split_steps(draft)) + "\nRefinement:\n"


def local_prompt(question: str, draft: str, bad_step_index: int) -> str:
    """The local refiner's input: the global prompt with ``[BAD]`` prefixing step
    ``bad_step_index`` (0-based, over the draft's steps); ``ValueError`` when out of range."""
    steps = split_steps(draft)
    check_step_index(bad_step_index, len(steps))
    steps[bad_step_index] = BAD_TOKEN + steps[bad_step_index]
    return global_prompt(question, "\n".join(steps))


def verified_prefix(draft: str, bad_step_index: int) -> str:
    """The steps before the first bad one, one per line (empty when step 0 is bad)."""
    return join_steps(split_steps(draft)[:bad_step_index])


def local_solution(draft: str, bad_step_index: int, output: str) -> str:
    """A local refinement as a whole solution: the verified prefix + the refiner's continuation.

    A refiner that re-writes the prefix itself (its output already starts with it) is taken as is,
    so the two target conventions cannot double the prefix.
    """
    prefix = verified_prefix(draft, bad_step_index)
    if not prefix or output.lstrip().startswith(prefix):
        return output
    return prefix + output.lstrip("\n")


@dataclass(frozen=True)
class Candidate:
    """One solution the reranker may pick."""

    kind: str  # draft | global | local
    text: str  # the whole solution, one step per line
    score: float  # the ORM's final score (its score at the last step)
    step_scores: tuple[float, ...] = ()  # the ORM's score at every step
    answer: str | None = None  # the grader's extract_answer(text); None: no answer

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"candidate kind must be one of {KINDS}, got {self.kind!r}")


def make_candidate(kind: str, text: str, step_scores: Sequence[float]) -> Candidate:
    """A candidate with its score and answer derived from ``text`` and the ORM's step scores."""
    scores = tuple(float(s) for s in step_scores)
    return Candidate(kind, text, final_score(scores), scores, extract_answer(text))


def best_index(scores: Sequence[float], answered: Sequence[bool] | None = None) -> int:
    """The reranker's rule on bare scores: the index of the highest score among the candidates
    with an answer (among all when none has one; ``answered=None``: all have one), a NaN score
    lowest, ties to the earliest. Evaluation's sample reranking (rerank@K, App. D) uses it too.

    >>> best_index([0.3, 0.8, 0.8]), best_index([0.9, 0.2], answered=[False, True])
    (1, 1)
    """
    if not scores:
        raise ValueError("rerank needs at least one candidate")
    answered = [True] * len(scores) if answered is None else list(answered)
    if len(answered) != len(scores):
        raise ValueError(f"got {len(scores)} scores and {len(answered)} answered flags")

    def key(i: int) -> tuple:
        score = -math.inf if scores[i] != scores[i] else scores[i]
        return (answered[i], score, -i)

    return max(range(len(scores)), key=key)


def rerank(candidates: Sequence[Candidate]) -> Candidate:
    """The ORM reranker (paper 3.2): the candidate with the highest ORM score.

    Ties go to draft, then global, then local, then the earlier candidate. A candidate without an
    answer (an empty or truncated refinement) can never be graded correct, so it is only chosen
    when no candidate has an answer.

    >>> a = make_candidate("local", "#### 4", [0.7])
    >>> b = make_candidate("draft", "#### 5", [0.7])
    >>> rerank([a, b]).kind
    'draft'
    >>> rerank([make_candidate("global", "", []), make_candidate("draft", "#### 5", [0.0])]).kind
    'draft'
    """
    ordered = sorted(candidates, key=lambda c: KINDS.index(c.kind))  # stable: ties by kind, then position
    return ordered[best_index([c.score for c in ordered], [c.answer is not None for c in ordered])]


@dataclass(frozen=True)
class RefinePlan:
    """The outcome of when + where for one draft: what (if anything) to ask the refiners."""

    question: str
    draft: Candidate
    refine: bool  # when: the ORM did not trust the draft
    bad_step: int | None = None  # where: first step scored <= T (None: none, so no local refinement)
    where_scores: tuple[float, ...] = ()  # the SORM's (or ORM's) step scores used for `bad_step`
    prompts: dict[str, str] = field(default_factory=dict)  # refiner kind -> prompt

    def solution(self, kind: str, output: str) -> str:
        """A refiner's output as a whole solution (the text the ORM then scores)."""
        if kind not in self.prompts:
            raise KeyError(f"refinement {kind!r} was not planned; planned: {sorted(self.prompts)}")
        return local_solution(self.draft.text, self.bad_step, output) if kind == "local" else output


@dataclass(frozen=True)
class GloreDecision:
    """The policy's answer for one question, with the trace that explains it."""

    chosen: Candidate
    candidates: tuple[Candidate, ...]  # draft first, then the refinements that ran
    refined: bool
    bad_step: int | None
    draft_score: float

    @property
    def answer(self) -> str | None:
        return self.chosen.answer

    def to_dict(self) -> dict:
        return asdict(self) | {"answer": self.answer}


def refine_plan(
    question: str,
    draft: str,
    orm_step_scores: Sequence[float],
    where_step_scores: Sequence[float] | None = None,
    when_threshold: float = 0.5,
    where_threshold: float = 0.5,
) -> RefinePlan:
    """When + where for one draft.

    ``where_step_scores`` (the SORM's, or the ORM's for the paper's ablation) is only needed when
    the draft is refined, so a caller may skip the SORM for drafts the ORM trusts.

    >>> plan = refine_plan("q", "1 + 1 = 3\\n#### 3", [0.4, 0.2], [0.3, 0.2])
    >>> plan.refine, plan.bad_step, sorted(plan.prompts)
    (True, 0, ['global', 'local'])
    >>> refine_plan("q", "1 + 1 = 2\\n#### 2", [0.9, 0.9]).refine
    False
    """
    candidate = make_candidate("draft", draft, orm_step_scores)
    if not should_refine(candidate.score, when_threshold):
        return RefinePlan(question, candidate, refine=False)
    if where_step_scores is None:
        raise ValueError("the draft is refined, so refine_plan needs where_step_scores (SORM or ORM)")
    n_steps = len(split_steps(draft))
    if len(where_step_scores) != n_steps:
        raise ValueError(f"got {len(where_step_scores)} where step scores for a draft of {n_steps} steps")
    bad = first_bad_step(where_step_scores, where_threshold)
    prompts = {"global": global_prompt(question, draft)}
    if bad is not None:
        prompts["local"] = local_prompt(question, draft, bad)
    return RefinePlan(question, candidate, True, bad, tuple(float(s) for s in where_step_scores), prompts)


def decide(plan: RefinePlan, solutions: Mapping[str, str], step_scores: Mapping[str, Sequence[float]]) -> GloreDecision:
    """How: rerank the draft and the planned refinements by the ORM.

    ``solutions[kind]`` is ``plan.solution(kind, output)`` and ``step_scores[kind]`` the ORM's step
    scores of it, for every planned kind.
    """
    missing = [k for k in plan.prompts if k not in solutions or k not in step_scores]
    if missing:
        raise KeyError(f"missing solutions or ORM scores for planned refinements {missing}")
    extra = sorted(set(solutions) - set(plan.prompts))
    if extra:
        raise KeyError(f"got refinements {extra} that were not planned; planned: {sorted(plan.prompts)}")
    refinements = [make_candidate(k, solutions[k], step_scores[k]) for k in REFINEMENT_KINDS if k in plan.prompts]
    candidates = (plan.draft, *refinements)
    return GloreDecision(rerank(candidates), candidates, plan.refine, plan.bad_step, plan.draft.score)
