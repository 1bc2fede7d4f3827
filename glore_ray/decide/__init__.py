"""The GLoRe inference policy (paper 3.2, 4.2), pure: when (ORM gate), where (first bad step),
how (global + local refinement, ORM rerank). Used by evaluation and by the HTTP service."""

from glore_ray.decide.how import (
    KINDS,
    Candidate,
    GloreDecision,
    RefinePlan,
    best_index,
    decide,
    global_prompt,
    local_prompt,
    local_solution,
    make_candidate,
    refine_plan,
    rerank,
)
from glore_ray.decide.when import final_score, should_refine
from glore_ray.decide.where import BAD_TOKEN, first_bad_step, highest_value_step, value_bad_step

__all__ = [
    "BAD_TOKEN", "KINDS", "Candidate", "GloreDecision", "RefinePlan", "best_index", "decide", "final_score",
    "first_bad_step", "global_prompt", "highest_value_step", "local_prompt", "local_solution",
    "make_candidate", "refine_plan", "rerank", "should_refine",
    "value_bad_step",
]
