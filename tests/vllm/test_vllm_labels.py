"""SORM labelling with rollout.backend=vllm on vLLM's CPU build (issue 18): the efficient
scheduler's labels equal the naive procedure's under the same seeds, and the rollouts it keeps
are the naive procedure's own."""

from __future__ import annotations

import dataclasses

import pytest
from rollout_support import memorised_lm_dir, memorised_problems

from glore_ray.config import LabelConfig, RolloutConfig
from glore_ray.labeling.scheduler import sorm_labels
from glore_ray.rollout.vllm_engine import vllm_available
from glore_ray.stages.labels import SormShardJob
from glore_ray.tasks.prompts import student_prompt

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(), reason="needs vLLM: make vllm-env")]


def samples(problems) -> list[dict]:
    """Each memorised problem's reference (correct) and a copy with its second-to-last step broken."""
    rows = []
    for p in problems:
        steps = p.reference.rstrip("\n").splitlines()
        wrong = steps[:-2] + [steps[-2] + "1", "#### 0"]
        for text, correct in ((p.reference, True), ("\n".join(wrong), False)):
            rows.append({"question_id": p.id, "question": p.question, "prompt": student_prompt(p.question),
                         "text": text, "correct": correct, "answer": p.answer})
    return rows


def test_scheduler_labels_equal_the_naive_procedures_on_vllm(tiny_tokenizer, tmp_path_factory):
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    path = memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem"), n_head=2)
    generator = VLLMGenerator(path, RolloutConfig(backend="vllm"))
    labels = LabelConfig(sorm_k=4, sorm_max_new_tokens=80, sorm_chunk=1)
    work = samples(memorised_problems())
    job = SormShardJob(labels, 1.0, 1.0, 0, "train")
    fast = sorm_labels(work, job._verifier(generator), labels)
    naive = sorm_labels(work, job._verifier(generator), dataclasses.replace(labels, scheduler="naive"))
    assert [r["labels"] for r in fast.rows] == [r["labels"] for r in naive.rows]
    assert {tuple(r["labels"]) for r in fast.rows} != {(1,) * len(fast.rows[0]["labels"])}  # not all one label
    by_key = {(r["prefix_key"], r["sample_index"]): r["text"] for r in naive.rollouts}
    assert all(by_key[(r["prefix_key"], r["sample_index"])] == r["text"] for r in fast.rollouts)
    assert fast.stats.rollouts_requested < naive.stats.rollouts_requested
