"""Contrastive ORM pairs (paper App. F): a correct and an incorrect sample of one question, the
model trained with ``-log sigmoid(r_correct - r_incorrect)``.

>>> rows = contrastive_pairs([
...     {"question_id": "q", "prompt": "Q: x\\nA: ", "text": "1 + 1 = 2\\n#### 2", "correct": True},
...     {"question_id": "q", "prompt": "Q: x\\nA: ", "text": "1 + 1 = 3\\n#### 3", "correct": False}], 4, 0)
>>> rows[0]["chosen"].startswith("1 + 1 = 2"), len(rows)
(True, 1)
"""

from __future__ import annotations

import random
from collections import defaultdict

from glore_ray.labeling.expert_iteration import normalized_solution


def contrastive_pairs(samples: list[dict], cap_per_question: int, seed: int) -> list[dict]:
    """Rows {question_id, prompt, chosen, rejected}: up to ``cap_per_question`` seeded pairs of
    distinct correct/incorrect solutions per question."""
    good, bad, prompts = defaultdict(set), defaultdict(set), {}
    for s in samples:
        text = normalized_solution(s["text"])
        if text:
            (good if s["correct"] else bad)[s["question_id"]].add(text)
            prompts[s["question_id"]] = s["prompt"]
    rows = []
    for qid in sorted(set(good) & set(bad)):
        pairs = [(g, b) for g in sorted(good[qid]) for b in sorted(bad[qid])]
        random.Random(f"contrastive/{seed}/{qid}").shuffle(pairs)
        rows += [{"question_id": qid, "prompt": prompts[qid], "chosen": g, "rejected": b}
                 for g, b in pairs[:cap_per_question]]
    return rows
