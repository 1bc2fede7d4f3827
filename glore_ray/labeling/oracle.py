"""The oracle control (docs/faithful-world.md): the SORM's training rows with the tiny world's exact labels.

SORM labels estimate V* by rollouts (paper 3.1 step 2); the tiny world knows V* exactly
(App. G's ground truth). A reward model trained on the same solutions with the exact labels,
balanced the same way (post-processing (3), same seed), differs from the SORM only in its
labels: its scores bound what better step labels alone would buy.

>>> from glore_ray.tasks.tiny_world import generate_problems
>>> p = generate_problems(1, seed=0, split="train")[0]
>>> rows = [{"question_id": p.id, "solution": p.reference, "labels": [1, 1, 1]},
...         {"question_id": p.id, "solution": "1 + 1 = 3\\n#### " + p.answer + "\\n", "labels": [1, 1]}]
>>> relabelled, counts = oracle_rows(rows, {p.id: p}, seed=None)
>>> [r["labels"] for r in relabelled], counts
([[1, 1, 1], [0, 0]], {'rows': 2, 'labels_changed': 2, 'balanced_masked': 0})
"""

from __future__ import annotations

from glore_ray.labeling.sorm import balance_by_step
from glore_ray.tasks.tiny_oracle import exact_step_labels
from glore_ray.tasks.tiny_world import TinyProblem


def oracle_rows(rows: list[dict], problems_by_id: dict[str, TinyProblem], seed: int | None
                ) -> tuple[list[dict], dict]:
    """``rows`` (unbalanced SORM label rows: question_id, solution, labels, ...) with every
    step label replaced by the exact one, then balanced per step with ``seed`` as the SORM's
    were (``None``: the SORM was not balanced, labels.balance off). Other columns are kept.

    Returns new rows (inputs untouched) and counts: ``labels_changed``, how many of the SORM's
    0/1 labels the oracle overturned; ``balanced_masked``, how many exact labels balancing set
    to -1.
    """
    relabelled, changed = [], 0
    for n, row in enumerate(rows):
        exact = exact_step_labels(problems_by_id[row["question_id"]], row["solution"])
        if len(exact) != len(row["labels"]):  # both come from split_steps(solution): a corrupt row
            raise ValueError(f"oracle_rows: row {n} (question {row['question_id']!r}) has {len(row['labels'])} "
                             f"labels but its solution has {len(exact)} steps")
        changed += sum(label in (0, 1) and label != e for label, e in zip(row["labels"], exact, strict=True))
        relabelled.append(dict(row, labels=exact))
    masked = 0
    if seed is not None:
        relabelled, masked = balance_by_step(relabelled, seed=seed)
    return relabelled, {"rows": len(relabelled), "labels_changed": changed, "balanced_masked": masked}
