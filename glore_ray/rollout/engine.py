"""The rollout layer's core: requests, completions, seeds and the stop rule (docs/architecture.md
§5; the backend choice is in ``backends``).

Every stage samples through one :class:`Generator` protocol: Expert Iteration's K=96 samples
per question, the SORM's K=8 verification rollouts from every step prefix (paper 3.1 step 2),
greedy drafts for evaluation and refinement. A sample's text depends only on (model,
prompt+prefix, seed, sampling params), never on its batch: the SORM labeller's efficient
scheduler proves its labels equal the naive procedure's by relying on exactly that.

>>> rollout_seed(0, "q1", -1, 3, 0) == rollout_seed(0, "q1", -1, 3, 0)
True
>>> rollout_seed(0, "q1", -1, 3, 0) != rollout_seed(0, "q1", -1, 4, 0)
True
>>> answer_line_end("3 + 4 = 7\\n#### 7\\nmore")
17
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from glore_ray.tasks.grading import ANSWER_MARK


class RolloutError(ValueError):
    """A rollout request or backend that cannot be used as given (says which and why)."""


@dataclass(frozen=True)
class RolloutRequest:
    """One prompt (plus an optional solution prefix) to continue ``n`` times."""

    question_id: str
    prompt: str  # the student prompt "Q: ...\nA: "
    prefix: str = ""  # solution so far, one newline-terminated step per line; generation continues after it
    prefix_index: int = -1  # -1: from the question; i: after step i (SORM verification, paper 3.1)
    n: int = 1  # samples
    answer: str = ""  # reference answer, for the grader's verdict
    round: int = 0  # Expert Iteration round (enters the seed)
    greedy: bool = False  # argmax decoding regardless of temperature (drafts)
    seed_key: str = ""  # extra key mixed into the seed, e.g. a hash of the prefix text

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise RolloutError(f"request {self.question_id!r} (prefix {self.prefix_index}): n must be >= 1, got {self.n!r}")
        if not self.prompt:
            raise RolloutError(f"request {self.question_id!r}: empty prompt")

    @property
    def text(self) -> str:
        """What the model is conditioned on."""
        return self.prompt + self.prefix


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a request."""

    sample_index: int
    text: str  # the generated continuation only (cut after the answer line's newline)
    num_tokens: int  # tokens generated, EOS included
    finished: bool  # hit the answer line's newline or EOS (False: ran out of tokens or context)
    seed: int


class Generator(Protocol):
    """A backend that samples continuations (HF on any torch device, vLLM on GPUs)."""

    def generate(
        self,
        requests: Sequence[RolloutRequest],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        base_seed: int = 0,
    ) -> list[list[Completion]]:
        """Per request, its ``n`` completions in sample order."""
        ...


# Seed namespaces: a request's ``round`` keeps sample sets of the same questions apart. Expert
# Iteration uses its round number (0: bootstrap, 1..max_rounds); the sets below are drawn outside
# EI, from numbers no EI run reaches, so their samples never coincide with a round's.
EVAL_SAMPLES_ROUND = 10_000  # the student stage's pass@K / faithfulness samples on the test split
ORM_SAMPLES_ROUND = 20_000  # orm_data's samples of the train questions (ORM, SORM and refiner data)


def rollout_seed(base_seed: int, question_id: str, prefix_index: int, sample_index: int, round: int = 0,
                 seed_key: str = "") -> int:
    """A stable 63-bit seed from the sample's identity (sha256, never Python's salted ``hash``)."""
    key = f"{base_seed}|{question_id}|{prefix_index}|{sample_index}|{round}|{seed_key}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def request_seeds(request: RolloutRequest, base_seed: int) -> list[int]:
    return [rollout_seed(base_seed, request.question_id, request.prefix_index, i, request.round, request.seed_key)
            for i in range(request.n)]


def answer_line_end(solution: str, start: int = 0) -> int | None:
    """Index just past the newline that ends the first line starting with ``####`` whose newline
    lies beyond ``start``; None while there is none (the stop rule, docs/architecture.md §3)."""
    line_start = 0
    while True:
        newline = solution.find("\n", line_start)
        if newline < 0:
            return None
        if newline >= start and solution[line_start:newline].lstrip().startswith(ANSWER_MARK):
            return newline + 1
        line_start = newline + 1


def cut_at_answer(prefix: str, text: str) -> tuple[str, bool]:
    """``text`` cut after the answer line's newline, and whether it was cut there."""
    end = answer_line_end(prefix + text, start=len(prefix))
    return (text, False) if end is None else (text[: end - len(prefix)], True)


def pick_device(device: str) -> str:
    """``auto`` -> cuda when one is visible, else cpu; anything else as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_model_path(path) -> str:
    """A local checkpoint directory must hold config.json; anything else is taken as a hub id."""
    path = str(path)
    local = Path(path)
    if local.exists() and not (local / "config.json").is_file():
        raise RolloutError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise RolloutError(f"{path}: model path does not exist")
    return path
