"""Contrastive ORM pairs (paper App. F): a correct and an incorrect sample of one question, the
model trained with ``-log sigmoid(r_correct - r_incorrect)`` on the final token only.

App. F: "we select the maximal equal number of positive and negative solutions for the same
prompt and form pairs (S_good, S_bad) with no solution repeated", so a question with g distinct
correct and b distinct incorrect solutions gives min(g, b) pairs, each solution in one pair.

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


def contrastive_pairs(samples: list[dict], cap_per_question: int | None, seed: int) -> list[dict]:
    """Rows {question_id, prompt, chosen, rejected}: per question, min(#correct, #incorrect)
    pairs of distinct solutions, no solution in two pairs (a seeded matching), at most
    ``cap_per_question`` of them (None: no cap)."""
    good, bad, prompts = defaultdict(set), defaultdict(set), {}
    for n, s in enumerate(samples):
        if not isinstance(s.get("text"), str) or not isinstance(s.get("correct"), bool):
            raise ValueError(f"sample {n} (question {s.get('question_id')!r}): needs str 'text' and bool 'correct'")
        text = normalized_solution(s["text"])
        if text:
            (good if s["correct"] else bad)[s["question_id"]].add(text)
            prompts[s["question_id"]] = s["prompt"]
    rows = []
    for qid in sorted(set(good) & set(bad)):
        rng = random.Random(f"contrastive/{seed}/{qid}")
        chosen, rejected = sorted(good[qid]), sorted(bad[qid])
        rng.shuffle(chosen)
        rng.shuffle(rejected)
        pairs = list(zip(chosen, rejected))  # stops at the shorter list: the maximal equal number
        rows += [{"question_id": qid, "prompt": prompts[qid], "chosen": g, "rejected": b}
                 for g, b in pairs[:cap_per_question]]
    return rows
