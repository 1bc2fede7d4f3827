"""Prompt formats shared by every stage (docs/architecture.md §3). Refiner prompts live with the policy in
:mod:`glore_ray.decide.how`."""

from __future__ import annotations

# SVAMP has no chain-of-thought data: paper 3.1 bootstraps the first EI dataset with a 1-shot
# prompt. This is our one example (written for this project, GSM8K-style line format).
ONE_SHOT_EXAMPLE = (
    "Q: A baker made 24 muffins. She sold 9 in the morning and 7 in the afternoon. "
    "How many muffins are left?\n"
    "A: She sold 9 + 7 = <<9+7=16>>16 muffins.\n"
    "So 24 - 16 = <<24-16=8>>8 muffins are left.\n"
    "#### 8\n\n"
)


def student_prompt(question: str) -> str:
    """``Q: {question}\\nA: ``: the student's prompt; the solution follows on the same line."""
    return f"Q: {question}\nA: "


def one_shot_prompt(question: str) -> str:
    return ONE_SHOT_EXAMPLE + student_prompt(question)
