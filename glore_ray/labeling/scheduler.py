"""Which verifying rollouts to make for SORM labels: the paper's naive procedure and the
efficient scheduler that gives identical labels for far fewer rollouts (docs/architecture.md §5).

Both take the same ``verify(batch: list[VerifyRequest]) -> list[VerifyResult]`` callback (the
Ray stage wraps the rollout layer; tests pass a deterministic fake). A rollout is fixed by
(question id, prefix text, sample index), so both schedulers see the same rollout for the same
request and the labels agree exactly.

Naive (paper 3.1 step 2): K rollouts from every prefix P_i, i < L, of every solution.
Efficient, with post-processing (1) on, the label of step i is 1 iff some step k >= i has a
positive raw label, so:
  - a correct solution is all positive without a rollout (its own P_L is positive);
  - an incorrect solution is scanned from its last non-answer step backwards and the scan stops
    at the first positive prefix: rule (1) decides every earlier step;
  - a prefix stops sampling at its first counting rollout (``any`` over K is decided), sampled
    in chunks of ``sorm_chunk`` per wave; results are used in sample-index order, so the first
    counting rollout (the local refiner's target) is the same one the naive procedure finds;
  - a prefix shared by several samples of a question is verified once;
  - all solutions advance together in waves, so every verify call is large.
With rule (1) off only the per-prefix early stop and the de-duplication apply.

Soft (Math-Shepherd's soft estimate, issue 19): all K rollouts from every distinct prefix; the
label of step i is the share of them that count, a target in [0, 1] trained with BCE. Soft labels
need every rollout, so no early stop applies; only prefix sharing does. With rule (1) on, a
step's soft label is the largest share from it or any later step (its soft form: the chance of
finishing from here is at least the chance from any later prefix of this solution), so
``label > 0`` is exactly the hard label under the same rollouts.

Binary (OmegaPRM's and EpicPRM's labeller, for comparison): for an incorrect solution, binary
search for its last positive prefix, assuming raw labels are monotone (every prefix before a
positive one is positive). It checks about log2(L) prefixes instead of the scan's L - i, but raw
labels are not monotone (a prefix after a wrong step can still reach the answer by luck), so its
labels can differ from the naive procedure's; ``bench/sorm_labels.py`` measures by how much.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from glore_ray.config import LabelConfig
from glore_ray.labeling.sorm import (
    VerifyRequest,
    VerifyResult,
    label_row,
    prefix_key,
    propagate_positive,
    rollout_counts,
    solution_steps,
)
from glore_ray.tasks.steps import join_steps

Verify = Callable[[list[VerifyRequest]], list[VerifyResult]]
UNKNOWN = -1  # raw label of a prefix the efficient scheduler never rolled out


@dataclass
class SormStats:
    solutions: int = 0
    skipped_empty: int = 0  # samples with no steps at all: no label row
    rollouts_requested: int = 0
    tokens_generated: int = 0
    prefixes_consulted: int = 0  # (solution, step) pairs whose label came from rollouts
    prefixes_verified: int = 0  # distinct (question, prefix) rolled out
    prefixes_deduplicated: int = 0  # consulted - verified: served by another sample's rollouts
    # naive: labels rule (1) changed; efficient: labels rule (1) set with no rollout of their own
    labels_by_rule1: int = 0
    consistency_rejected: int = 0  # correct rollouts that failed the consistency check (2)
    verify_calls: int = 0
    waves: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SormResult:
    rows: list[dict]  # label rows (step_bce format + audit fields), in input order
    rollouts: list[dict]  # every rollout made, for the audit Parquet
    stats: SormStats


@dataclass
class _Prefix:
    """One distinct (question, prefix) and what its rollouts found so far."""

    request: VerifyRequest  # template: sample_index 0
    steps: list[str]
    made: int = 0  # rollouts made (sample indices 0..made-1)
    counted: int = 0  # of them, rollouts that count (soft labels: counted / K)
    success: bool = False
    witness: str | None = None  # suffix of the first counting rollout, by sample index

    def decided(self, k: int) -> bool:
        return self.success or self.made >= k


@dataclass
class _Solution:
    sample: dict
    steps: list[str]
    prefixes: list[_Prefix]  # P_0..P_{L-2}; the last step needs no rollout
    labels: list[int] = field(default_factory=list)
    cursor: int = -1  # efficient scan: the prefix being decided (-1: done)


def sorm_labels(samples: list[dict], verify: Verify, config: LabelConfig, first_row: int = 0) -> SormResult:
    """SORM label rows for ``samples`` ({question_id, prompt, text, correct, answer}) with the
    scheduler ``config.scheduler`` names; post-processing (1) and (2) as configured.
    ``first_row``: the row number of ``samples[0]`` in the whole set, when labelling a shard."""
    run = {"naive": naive_labels, "efficient": efficient_labels, "binary": binary_labels}[config.scheduler]
    return run(samples, verify, config, first_row)


def soft_labels(samples: list[dict], verify: Verify, config: LabelConfig, first_row: int = 0) -> SormResult:
    """Soft labels (module docstring): K rollouts from every distinct non-final prefix, in one
    batched call; the last step's label is the solution's own correctness (0.0 or 1.0)."""
    stats, rollouts, table = SormStats(), [], {}
    solutions = _parse(samples, stats, table, first_row)
    _every_rollout(list(table.values()), verify, config, stats, rollouts)
    rows = []
    for s in solutions:
        shares = [p.counted / config.sorm_k for p in s.prefixes] + [float(s.sample["correct"])]
        labels = soft_envelope(shares) if config.propagate_positive else shares
        stats.labels_by_rule1 += sum(a != b for a, b in zip(shares, labels, strict=True))
        rows.append(_row(s, labels, [int(p.success) for p in s.prefixes] + [int(s.sample["correct"])]))
    stats.prefixes_consulted = sum(len(s.prefixes) for s in solutions)
    stats.prefixes_verified = len(table)
    stats.prefixes_deduplicated = stats.prefixes_consulted - stats.prefixes_verified
    return SormResult(rows, rollouts, stats)


def soft_envelope(shares: list[float]) -> list[float]:
    """Rule (1) for soft labels: each step gets the largest share from it to the end.

    >>> soft_envelope([0.25, 0.0, 0.5, 0.0])
    [0.5, 0.5, 0.5, 0.0]
    """
    out, best = [], 0.0
    for share in reversed(shares):
        best = max(best, share)
        out.append(best)
    return out[::-1]


def naive_labels(samples: list[dict], verify: Verify, config: LabelConfig, first_row: int = 0) -> SormResult:
    """The paper's procedure: K rollouts from every non-final prefix of every solution."""
    stats, rollouts = SormStats(), []
    solutions = _parse(samples, stats, table=None, first_row=first_row)
    prefixes = [p for s in solutions for p in s.prefixes]
    stats.prefixes_consulted = len(prefixes)
    _every_rollout(prefixes, verify, config, stats, rollouts)
    stats.prefixes_verified = sum(len(s.prefixes) for s in solutions)  # no sharing
    rows = []
    for s in solutions:
        raw = [int(p.success) for p in s.prefixes] + [int(s.sample["correct"])]
        labels, changed = propagate_positive(raw) if config.propagate_positive else (raw, 0)
        stats.labels_by_rule1 += changed
        rows.append(_row(s, labels, raw))
    return SormResult(rows, rollouts, stats)


def efficient_labels(samples: list[dict], verify: Verify, config: LabelConfig, first_row: int = 0) -> SormResult:
    """Labels equal to :func:`naive_labels` under the same rollouts, for far fewer rollouts."""
    stats, rollouts, table = SormStats(), [], {}
    solutions = _parse(samples, stats, table, first_row)
    consulted: set[tuple[int, int]] = set()
    for s in solutions:
        correct = s.sample["correct"]
        s.labels = [UNKNOWN] * (len(s.steps) - 1) + [int(correct)]
        rule1_done = config.propagate_positive and correct
        s.cursor = -1 if rule1_done else len(s.prefixes) - 1
    while True:
        wanted: dict[str, _Prefix] = {}
        for n, s in enumerate(solutions):
            for i, p in _wanted(s, config):
                consulted.add((n, i))
                wanted.setdefault(p.request.seed_key, p)
        if not wanted:
            break
        _wave(list(wanted.values()), verify, config, stats, rollouts)
    rows = []
    for s in solutions:
        raw = [_raw(p, config.sorm_k) for p in s.prefixes] + [int(s.sample["correct"])]
        labels = _final_labels(s, raw, config, stats)
        rows.append(_row(s, labels, raw))
    stats.prefixes_consulted = len(consulted)
    stats.prefixes_verified = sum(p.made > 0 for p in table.values())
    stats.prefixes_deduplicated = stats.prefixes_consulted - stats.prefixes_verified
    return SormResult(rows, rollouts, stats)


def binary_labels(samples: list[dict], verify: Verify, config: LabelConfig, first_row: int = 0) -> SormResult:
    """Each incorrect solution's last positive prefix by binary search (the module docstring says
    what it assumes); all solutions advance together in waves, prefixes shared and early-stopped
    as in :func:`efficient_labels`. Steps up to that prefix are labelled 1, the rest 0."""
    if not config.propagate_positive:
        raise ValueError("labels.scheduler=binary searches for the last positive prefix: it needs "
                         "labels.propagate_positive (rule (1))")
    stats, rollouts, table = SormStats(), [], {}
    solutions = _parse(samples, stats, table, first_row)
    k, consulted = config.sorm_k, set()
    # (lo, hi): prefix lo is positive (-1: the empty prefix), hi negative (L-1: the whole, incorrect solution)
    bounds = {n: (-1, len(s.prefixes)) for n, s in enumerate(solutions) if not s.sample["correct"]}
    while True:
        wanted: dict[str, _Prefix] = {}
        for n, (lo, hi) in bounds.items():
            while hi - lo > 1 and solutions[n].prefixes[(lo + hi) // 2].decided(k):
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if solutions[n].prefixes[mid].success else (lo, mid)
            bounds[n] = (lo, hi)
            if hi - lo > 1:
                mid = (lo + hi) // 2
                consulted.add((n, mid))
                wanted.setdefault(solutions[n].prefixes[mid].request.seed_key, solutions[n].prefixes[mid])
        if not wanted:
            break
        _wave(list(wanted.values()), verify, config, stats, rollouts)
    rows = []
    for n, s in enumerate(solutions):
        raw = [_raw(p, k) for p in s.prefixes] + [int(s.sample["correct"])]
        last_positive = bounds[n][0] if n in bounds else len(s.steps) - 1
        labels = [1 if i <= last_positive else 0 for i in range(len(s.steps))]
        stats.labels_by_rule1 += sum(r == UNKNOWN and y == 1 for r, y in zip(raw, labels, strict=True))
        rows.append(_row(s, labels, raw))
    stats.prefixes_consulted = len(consulted)
    stats.prefixes_verified = sum(p.made > 0 for p in table.values())
    stats.prefixes_deduplicated = stats.prefixes_consulted - stats.prefixes_verified
    return SormResult(rows, rollouts, stats)


def _wanted(s: _Solution, config: LabelConfig) -> list[tuple[int, _Prefix]]:
    """The undecided prefixes solution ``s`` needs next (advancing its scan over decided ones)."""
    k = config.sorm_k
    if not config.propagate_positive:
        return [(i, p) for i, p in enumerate(s.prefixes) if not p.decided(k)]
    while s.cursor >= 0:
        p = s.prefixes[s.cursor]
        if not p.decided(k):
            return [(s.cursor, p)]
        if p.success:  # rule (1): the first positive from the end decides every earlier step
            s.cursor = -1
        else:
            s.cursor -= 1
    return []


def _final_labels(s: _Solution, raw: list[int], config: LabelConfig, stats: SormStats) -> list[int]:
    if not config.propagate_positive:
        return raw
    last_positive = max((i for i, r in enumerate(raw) if r == 1), default=-1)
    labels = [1 if i <= last_positive else 0 for i in range(len(raw))]
    # Steps before the scan's positive were never rolled out: rule (1) set them.
    pairs = list(zip(raw, labels, strict=True))
    stats.labels_by_rule1 += sum(r == UNKNOWN and label == 1 for r, label in pairs)
    if any(r == UNKNOWN and label == 0 for r, label in pairs):
        raise AssertionError(f"scheduler bug: undecided negative step in {s.sample['question_id']}")
    return labels


def _raw(p: _Prefix, k: int) -> int:
    return int(p.success) if p.decided(k) else UNKNOWN


def _every_rollout(prefixes: list[_Prefix], verify: Verify, config: LabelConfig, stats: SormStats,
                   rollouts: list) -> None:
    """All K rollouts of each prefix, in one batched call (naive and soft labels: no early stop)."""
    requests = [_with_sample(p.request, j) for p in prefixes for j in range(config.sorm_k)]
    owners = [p for p in prefixes for _ in range(config.sorm_k)]
    results = _call(verify, requests, config.sorm_max_batch, stats)
    for request, result, p in zip(requests, results, owners, strict=True):
        _record(p, request, result, config, stats, rollouts)


def _wave(pending: list[_Prefix], verify: Verify, config: LabelConfig, stats: SormStats, rollouts: list) -> None:
    """One round: the next chunk of samples for every pending prefix, in one batched call."""
    stats.waves += 1
    requests, owners = [], []
    for p in pending:
        for j in range(p.made, min(p.made + config.sorm_chunk, config.sorm_k)):
            requests.append(_with_sample(p.request, j))
            owners.append(p)
    results = _call(verify, requests, config.sorm_max_batch, stats)
    for request, result, p in zip(requests, results, owners, strict=True):
        _record(p, request, result, config, stats, rollouts)


def _record(p: _Prefix, request: VerifyRequest, result: VerifyResult, config: LabelConfig,
            stats: SormStats, rollouts: list) -> None:
    """Account one rollout to its prefix (requests of one prefix arrive in sample order)."""
    counts, rejected = rollout_counts(result, p.steps, config.consistency, config.strict_consistency)
    p.made += 1
    stats.consistency_rejected += rejected
    stats.tokens_generated += result.num_tokens
    p.counted += counts
    if counts and not p.success:
        p.success, p.witness = True, result.text
    rollouts.append({
        "question_id": request.question_id,
        "solution_key": request.solution_key,
        "prefix_key": request.seed_key,
        "prefix_index": request.prefix_index,
        "prefix": request.prefix,
        "sample_index": request.sample_index,
        "text": result.text,
        "correct": result.correct,
        "counted": counts,
        "consistency_rejected": rejected,
        "num_tokens": result.num_tokens,
    })


def _call(verify: Verify, requests: list[VerifyRequest], max_batch: int, stats: SormStats) -> list[VerifyResult]:
    results = []
    for start in range(0, len(requests), max_batch):
        batch = requests[start : start + max_batch]
        out = list(verify(batch))
        stats.verify_calls += 1
        if len(out) != len(batch) or not all(isinstance(r, VerifyResult) for r in out):
            raise ValueError(f"verify returned {len(out)} items for {len(batch)} requests; "
                             "it must return one VerifyResult per request, in order")
        results.extend(out)
    stats.rollouts_requested += len(requests)
    return results


def _parse(samples: list[dict], stats: SormStats, table: dict | None, first_row: int = 0) -> list[_Solution]:
    """Solutions with their prefixes; with a ``table`` equal prefixes of a question are shared."""
    solutions = []
    for n, sample in enumerate(samples, start=first_row):
        steps = solution_steps(sample, f"sample {n} (question {sample.get('question_id')!r})")
        if not steps:
            stats.skipped_empty += 1
            continue
        key = f"{sample['question_id']}/{n}"
        prefixes = []
        for i in range(len(steps) - 1):
            text = join_steps(steps[: i + 1])
            seed_key = prefix_key(sample["question_id"], text)
            fresh = _Prefix(VerifyRequest(key, sample["question_id"], sample["prompt"], text, i, 0,
                                          sample["answer"], seed_key), steps[: i + 1])
            prefixes.append(fresh if table is None else table.setdefault(seed_key, fresh))
        solutions.append(_Solution(sample, steps, prefixes))
    stats.solutions = len(solutions)
    return solutions


def _with_sample(template: VerifyRequest, j: int) -> VerifyRequest:
    return VerifyRequest(template.solution_key, template.question_id, template.prompt, template.prefix,
                         template.prefix_index, j, template.answer, template.seed_key)


def _row(s: _Solution, labels: list[int], raw: list[int]) -> dict:
    audit = {
        "raw_labels": raw,  # -1: not rolled out (efficient scheduler; rule (1) decided it)
        "witnesses": [p.witness for p in s.prefixes] + [None],  # first counting rollout's suffix
        "rollouts_per_step": [p.made for p in s.prefixes] + [0],  # shared prefixes: shared count
        "prefix_keys": [p.request.seed_key for p in s.prefixes] + [""],
    }
    return label_row(s.sample, s.steps, labels, audit)
