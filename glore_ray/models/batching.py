"""How a CPU should cut a batch of mixed-length sequences into forward passes.

On a CPU a forward pass costs about its padded tokens (rows x widest row) plus a fixed cost per
call (Python, dispatch, small GEMMs). The service's batches are a handful of arbitrary requests:
the bench's refiner prompts run from 65 to 219 tokens, so one padded pass wasted ~40% of its
prefill. :func:`length_groups` picks the contiguous groups of length-sorted rows that minimise
padded tokens plus calls, exactly. (The batch stages sort thousands of rows by length before
batching; their batches are already of one width and keep their fixed chunks.)
"""

from __future__ import annotations

from collections.abc import Sequence

# One more forward call's fixed cost in padded tokens on one CPU core: a tiny-world model (4 x 128)
# spends ~2 ms per call whatever its size and ~0.05 ms per prefill token (bench/serve_load.py's
# shape on an AVX2 EPYC), so a call is worth ~40-50 tokens of padding.
CPU_FORWARD_CALL_COST = 48


def length_groups(lengths: Sequence[int], call_cost: int) -> list[tuple[int, int]]:
    """Split ascending ``lengths`` into contiguous groups ``[start, end)`` minimising the sum over
    groups of ``call_cost + rows * widest`` (dynamic programming over the cut points, O(n^2)).

    >>> length_groups([60, 62, 65, 200, 210], call_cost=48)
    [(0, 3), (3, 5)]
    >>> length_groups([60, 62, 65, 70], call_cost=48)
    [(0, 4)]
    >>> length_groups([], call_cost=48)
    []
    """
    if any(b < a for a, b in zip(lengths, lengths[1:])):
        raise ValueError("length_groups: lengths must be ascending")
    if call_cost < 0:
        raise ValueError(f"length_groups: call_cost must be >= 0, got {call_cost}")
    n = len(lengths)
    best, cut = [0] + [None] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            cost = best[start] + call_cost + (end - start) * lengths[end - 1]
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], n
    while end > 0:
        groups.append((cut[end], end))
        end = cut[end]
    return groups[::-1]
