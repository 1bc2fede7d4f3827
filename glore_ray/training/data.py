"""Rows -> token ids -> micro-batches: the one place where training text is tokenised and collated.

Three row formats, one per objective (docs/architecture.md §3, §6):

- ``lm``: ``{"prompt", "target"}``; loss on the target tokens only, EOS appended to the target.
- ``step_bce``: ``{"prompt", "solution", "labels"}``; one label per step of ``split_steps(solution)``:
  0 or 1, a soft target in [0, 1] (soft SORM labels: the share of a prefix's rollouts that
  succeed), or ``-1`` (ignore this step, SORM balancing); step i is scored at the token covering the newline
  that ends line i (found through offset mappings, so a real tokenizer that merges "\\n" with
  neighbouring characters still works).
- ``pairwise``: ``{"prompt", "chosen", "rejected"}``; reward = score at the last step (paper App. F).

Prompts are tokenised with the tokenizer's special tokens (BOS for Llama), continuations without,
each on its own: that is exactly how a generator sees the prompt, so train and sample agree.

Too-long sequences are *truncated on the right and counted* (not an error): a student sampled to
``max_new_tokens`` leaves a long tail of rambling solutions, and one of them must not kill an
hours-long fine-tune. The count is reported (``TrainResult.truncated``) so a stage can assert it is
small; a row with nothing left to learn after truncation is dropped (and counted as truncated).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from glore_ray.labeling.sorm import IGNORE_STEP
from glore_ray.models.tokenizer import prompt_ids, step_token_positions
from glore_ray.tasks.steps import split_steps

OBJECTIVES = ("lm", "step_bce", "pairwise")
REQUIRED_KEYS = {"lm": ("prompt", "target"), "step_bce": ("prompt", "solution", "labels"),
                 "pairwise": ("prompt", "chosen", "rejected")}
# Columns an objective reads where a row has them: an lm row's further segments (packed rows).
OPTIONAL_KEYS = {"lm": ("then",), "step_bce": (), "pairwise": ()}
IGNORE_INDEX = -100  # a token label torch's cross entropy skips (off-target tokens of lm rows)


@dataclass
class Example:
    """One tokenised row. ``input_ids`` [T]; for ``lm`` ``labels`` [T] (IGNORE_INDEX off-target); for
    ``step_bce`` ``positions``/``step_labels`` [S]; ``pairwise`` holds two sequences."""

    input_ids: list[int]
    labels: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    step_labels: list[float] = field(default_factory=list)
    rejected_ids: list[int] = field(default_factory=list)
    rejected_positions: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return max(len(self.input_ids), len(self.rejected_ids))


# --------------------------------------------------------------------------------------------
# Validation (runs on the driver before any worker starts, so bad input fails fast)


def validate_row(row: dict, objective: str, where: str) -> None:
    """Raise ``ValueError`` naming the row (``where``) and the problem."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    for key in REQUIRED_KEYS[objective]:
        if row.get(key) is None:
            raise ValueError(f"{where}: missing {key!r} (objective {objective!r} needs {REQUIRED_KEYS[objective]})")
    if objective == "lm" and row.get("then") is not None:
        then = row["then"]  # a list, or whatever sequence Ray Data hands back for one
        if isinstance(then, (str, dict)) or not hasattr(then, "__iter__") or not all(
                isinstance(seg, dict) and isinstance(seg.get("prompt"), str) and isinstance(seg.get("target"), str)
                for seg in then):
            raise ValueError(f"{where}: 'then' must be a list of {{'prompt': str, 'target': str}} segments")
    if objective != "step_bce":
        return
    labels, steps = list(row["labels"]), split_steps(row["solution"])
    if not steps:
        raise ValueError(f"{where}: solution has no steps")
    if len(labels) != len(steps):
        raise ValueError(f"{where}: {len(labels)} labels but the solution has {len(steps)} steps")
    bad = [v for v in labels if not is_step_label(v)]
    if bad:
        raise ValueError(f"{where}: labels must be 0, 1, a soft target in [0, 1] or -1 (ignore), got {bad[:3]}")


def is_step_label(value) -> bool:
    """A step_bce label: -1 (ignore), or a target in [0, 1] (hard 0/1 or soft). Any real number
    type counts (a boolean, a NumPy integer), as the hard labels' ``v in (-1, 0, 1)`` check did.

    >>> [is_step_label(v) for v in (1, 0.25, -1, 2, True, float("nan"), "1")]
    [True, True, True, False, True, False, False]
    """
    return isinstance(value, numbers.Real) and (value == IGNORE_STEP or 0 <= value <= 1)


def validate_rows(rows, objective: str, source: str = "rows") -> int:
    count = 0
    for i, row in enumerate(rows):
        validate_row(row, objective, f"{source}[{i}]" if "id" not in row else f"{source}[{i}] (id={row['id']})")
        count += 1
    if count == 0:
        raise ValueError(f"{source}: empty dataset, nothing to train on")
    return count


def row_key(row: dict) -> str:
    """A content hash of a row: its identity, whatever order or block it arrives in."""
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def canonical_order(rows: list[dict]) -> list[dict]:
    """Rows sorted by a content hash: a worker's shard arrives in whatever order Ray Data produced
    it; sorting first makes the seeded shuffle (and so a resumed run) independent of that order."""
    return sorted(rows, key=row_key)


def deterministic_shard(read_rows: Callable[[], Iterable[dict]], rank: int, world: int) -> list[dict]:
    """Worker ``rank``'s share of all rows: every ``world``-th row of the canonical order, so the
    split depends on the data alone (sizes differ by at most one row). Two streaming passes over
    ``read_rows()``: the first keeps only the hashes, the second only this worker's rows.

    >>> rows = [{"x": i} for i in range(5)]
    >>> parts = [deterministic_shard(lambda: iter(rows), r, 2) for r in (0, 1)]
    >>> sorted(len(p) for p in parts), sorted(row["x"] for p in parts for row in p)
    ([2, 3], [0, 1, 2, 3, 4])
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world} workers")
    wanted = Counter(sorted(row_key(row) for row in read_rows())[rank::world])
    mine = []
    for row in read_rows():
        key = row_key(row)
        if wanted[key] > 0:  # identical rows are counted, so each copy goes to exactly one worker
            wanted[key] -= 1
            mine.append(row)
    return canonical_order(mine)


# --------------------------------------------------------------------------------------------
# Tokenisation


def _encode_lm(row, tok, max_len) -> tuple[Example | None, bool]:
    # A packed row goes on after the first target's EOS with more (prompt, target) segments, each
    # prompt masked (pretrain.problems_per_row): a model that only ever read a problem at the start
    # of its context cannot read one anywhere else, which is where a refiner's question sits.
    ids, labels = [], []
    for n, segment in enumerate([row, *(row.get("then") or ())]):
        # The tokenizer's special tokens (a BOS where it adds one; the tiny one adds none) only at
        # the start of the row, as a reader of one long text would see them.
        p = prompt_ids(tok, segment["prompt"]) if n == 0 else list(
            tok(segment["prompt"], add_special_tokens=False)["input_ids"])
        t = list(tok(segment["target"], add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]
        ids, labels = ids + p + t, labels + [IGNORE_INDEX] * len(p) + t
    cut = len(ids) > max_len
    ids, labels = ids[:max_len], labels[:max_len]
    if all(v == IGNORE_INDEX for v in labels):
        return None, True
    return Example(input_ids=ids, labels=labels), cut


def _encode_steps(prompt, solution, tok, max_len) -> tuple[list[int], list[int], list[int], bool]:
    p = prompt_ids(tok, prompt)
    s, pos = step_token_positions(tok, solution)
    ids = (p + s)[:max_len]
    keep = [i for i, q in enumerate(pos) if len(p) + q < max_len]
    return ids, [len(p) + pos[i] for i in keep], keep, len(p) + len(s) > max_len


def _encode_step_bce(row, tok, max_len):
    ids, positions, keep, cut = _encode_steps(row["prompt"], row["solution"], tok, max_len)
    labels = [float(row["labels"][i]) for i in keep]
    if not any(v != IGNORE_STEP for v in labels):
        return None, cut  # nothing to learn: every kept step is ignored
    return Example(input_ids=ids, positions=positions, step_labels=labels), cut


def _encode_pairwise(row, tok, max_len):
    good, gpos, _, cut_g = _encode_steps(row["prompt"], row["chosen"], tok, max_len)
    bad, bpos, _, cut_b = _encode_steps(row["prompt"], row["rejected"], tok, max_len)
    # The reward is the last step's score (App. F); a truncated sequence has lost it.
    if cut_g or cut_b or not gpos or not bpos:
        return None, True
    return Example(input_ids=good, positions=[gpos[-1]], rejected_ids=bad, rejected_positions=[bpos[-1]]), False


_ENCODERS = {"lm": _encode_lm, "step_bce": _encode_step_bce, "pairwise": _encode_pairwise}


def encode_rows(rows, objective: str, tokenizer, max_len: int) -> tuple[list[Example], int]:
    """Tokenise rows; returns (examples, how many rows were truncated or dropped as too long)."""
    examples, truncated = [], 0
    for i, row in enumerate(rows):
        validate_row(row, objective, f"row {i}")
        ex, cut = _ENCODERS[objective](row, tokenizer, max_len)
        truncated += int(cut)
        if ex is not None:
            examples.append(ex)
    return examples, truncated


# --------------------------------------------------------------------------------------------
# Batching


def micro_batch_order(lengths: list[int], micro_batch: int, seed: int, bucket: bool,
                      window_batches: int = 32) -> list[list[int]]:
    """Index lists, one per micro-batch, for one epoch.

    With ``bucket``, a seeded shuffle is cut into windows of ``window_batches`` micro-batches and
    each window is sorted by length before chunking, so a micro-batch holds similar lengths
    (little padding) while batches stay random across windows; the batch order is shuffled again.

    >>> sorted(sorted(b) for b in micro_batch_order([5, 1, 5, 1], 2, seed=0, bucket=True))
    [[0, 2], [1, 3]]
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucket:
        window = micro_batch * window_batches
        order = [i for s in range(0, len(order), window)
                 for i in sorted(order[s:s + window], key=lambda j: lengths[j])]
    batches = [order[s:s + micro_batch] for s in range(0, len(order), micro_batch)]
    if bucket:
        rng.shuffle(batches)
    return batches


def micro_batch_stream(lengths: list[int], micro_batch: int, count: int, seed: int, bucket: bool):
    """``count`` micro-batches, epoch after epoch (epoch e shuffled with seed + e)."""
    out, epoch = [], 0
    while len(out) < count:
        out.extend(micro_batch_order(lengths, micro_batch, seed + 1000 * epoch, bucket))
        epoch += 1
    return out[:count]


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """Pad tokens / all tokens in right-padded micro-batches.

    >>> padding_fraction([2, 4], [[0, 1]])
    0.25
    """
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    real = sum(lengths[i] for b in batches for i in b)
    return (total - real) / total if total else 0.0


def _pad(seqs: list[list], value, dtype=None):
    import torch

    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=dtype or torch.long)


def collate(examples: list[Example], objective: str, pad_id: int) -> dict:
    """Right-padded tensors for one micro-batch.

    lm: input_ids, attention_mask, labels [B, T]. step_bce: input_ids, attention_mask [B, T],
    positions [B, S], step_labels [B, S] float (label -1 pads/ignores). pairwise: input_ids, attention_mask
    [2B, T] (chosen rows first), positions [2B, 1].
    """
    if objective == "pairwise":
        seqs = [e.input_ids for e in examples] + [e.rejected_ids for e in examples]
        pos = [e.positions for e in examples] + [e.rejected_positions for e in examples]
        ids = _pad(seqs, pad_id)
        mask = _pad([[1] * len(s) for s in seqs], 0)
        return {"input_ids": ids, "attention_mask": mask, "positions": _pad(pos, 0)}
    ids = _pad([e.input_ids for e in examples], pad_id)
    batch = {"input_ids": ids, "attention_mask": _pad([[1] * len(e.input_ids) for e in examples], 0)}
    if objective == "lm":
        batch["labels"] = _pad([e.labels for e in examples], IGNORE_INDEX)
    else:
        batch["positions"] = _pad([e.positions for e in examples], 0)
        import torch

        batch["step_labels"] = _pad([e.step_labels for e in examples], float(IGNORE_STEP), torch.float32)
    return batch


def count_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum())
