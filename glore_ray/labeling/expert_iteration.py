"""Expert Iteration datasets (paper 3.1 step 1, App. B), as pure functions over rows.

Round i samples the student K times per train question, keeps the samples with the correct final
answer, de-duplicates them (R_i) and trains the *base* model again on D_i = R_i ∪ D_{i-1}
(D_0 = the SFT data). Rounds stop once maj@1 stops improving.

>>> d0 = [{"question_id": "q", "prompt": "Q: 1+1\\nA: ", "target": "1 + 1 = 2\\n#### 2\\n"}]
>>> samples = [{"question_id": "q", "prompt": "Q: 1+1\\nA: ", "text": "1 + 1 = 2\\n#### 2", "correct": True},
...            {"question_id": "q", "prompt": "Q: 1+1\\nA: ", "text": "1 + 1 = 3\\n#### 3", "correct": False}]
>>> len(next_dataset(d0, samples)[0])
1
"""

from __future__ import annotations

from glore_ray.tasks.steps import join_steps, split_steps


def normalized_solution(text: str) -> str:
    """The de-duplication key: steps stripped of surrounding whitespace, blank lines dropped."""
    return join_steps(split_steps(text))


def sft_rows(questions: list[dict], prompt_fn) -> list[dict]:
    """D_0: one LM row per question with a reference solution."""
    return [
        {"question_id": q["id"], "prompt": prompt_fn(q["question"]), "target": normalized_solution(q["reference"])}
        for q in questions
        if q["reference"].strip()
    ]


def next_dataset(previous: list[dict], samples: list[dict], against_previous: bool = True) -> tuple[list[dict], dict]:
    """D_i = D_{i-1} ∪ R_i, R_i = dedup(correct samples); returns the rows and counts of what was kept.

    ``samples`` rows carry question_id, prompt, text (the full solution) and correct.
    ``against_previous`` also drops samples equal to a row of D_{i-1} (a set union). Without it
    R_i is de-duplicated within the round only, as the paper describes it (3.1: "de-duplication is
    then performed on the remaining samples"), so a solution the round shares with D_{i-1} is
    trained on twice. That matters where a question has one correct solution up to wording (the
    tiny world): against D_0, the only *new* correct samples are the ones whose steps are wrong.
    Order is stable: D_{i-1} first, then new rows in sample order, so D_i ⊇ D_{i-1} by position.
    """
    seen = {(r["question_id"], normalized_solution(r["target"])) for r in previous} if against_previous else set()
    new, correct = [], 0
    for s in samples:
        if not s["correct"]:
            continue
        correct += 1
        key = (s["question_id"], normalized_solution(s["text"]))
        if key in seen:
            continue
        seen.add(key)
        new.append({"question_id": s["question_id"], "prompt": s["prompt"], "target": key[1]})
    return previous + new, {"samples": len(samples), "correct": correct, "new_unique": len(new),
                            "dataset": len(previous) + len(new)}


def converged(maj1_history: list[float], tolerance: float) -> bool:
    """True once the latest round improved maj@1 by less than ``tolerance`` over the best
    earlier round (paper 3.1: EI "is repeated until the maj@1 score ... converges")."""
    if len(maj1_history) < 2:
        return False
    return maj1_history[-1] - max(maj1_history[:-1]) < tolerance
