"""The SORM stage's shards: whole questions per shard, and labels that do not depend on how the
solutions are cut into shards (the scheduler runs inside the generator actors, one shard a call)."""

import json

import pytest

from glore_ray.config import LabelConfig
from glore_ray.labeling.scheduler import sorm_labels
from glore_ray.rollout.hf_engine import HFGenerator
from glore_ray.stages.labels import SormShardJob, plan_label_shards, sum_stats
from glore_ray.tasks.prompts import student_prompt


def samples_for(problems, per_question: int) -> list[dict]:
    rows = []
    for p in problems:
        steps = p.reference.splitlines()
        wrong = steps[:-2] + [steps[-2] + "1", "#### 0"] if len(steps) > 2 else ["1 + 1 = 3", "#### 3"]
        for j in range(per_question):
            text = p.reference if j == 0 else "\n".join(wrong)
            rows.append({"question_id": p.id, "question": p.question, "prompt": student_prompt(p.question), "text": text,
                         "correct": j == 0, "answer": p.answer})
    return rows


def test_shards_hold_whole_questions_in_order(tiny_problems):
    samples = samples_for(tiny_problems[:7], per_question=3)
    plan = plan_label_shards(samples, max_solutions=4)
    shards = [json.loads(payload) for _, payload in plan]
    assert [i for i, _ in plan] == list(range(len(plan)))
    assert [s for shard in shards for s in shard["samples"]] == samples  # order and content kept
    assert [shard["first_row"] for shard in shards] == [sum(len(s["samples"]) for s in shards[:k]) for k in range(len(shards))]
    seen = set()
    for shard in shards:
        questions = {s["question_id"] for s in shard["samples"]}
        assert not questions & seen  # no question split over two shards
        seen |= questions
    assert all(len(s["samples"]) <= 6 for s in shards)  # 4 rounded up to whole questions of 3


def test_labels_do_not_depend_on_the_sharding(tiny_lm_dir, tiny_problems):
    """One shard or many: the same label rows (in order) and the same audit rollouts."""
    samples = samples_for(tiny_problems[:6], per_question=2)
    job = SormShardJob(LabelConfig(sorm_k=3, sorm_max_new_tokens=12, sorm_chunk=2), 1.0, 1.0, 0, "train")
    generator = HFGenerator(str(tiny_lm_dir), device="cpu", batch_size=16)

    def run(max_solutions):
        tables = {t: [] for t in job.tables}
        tokens = 0
        for _, payload in plan_label_shards(samples, max_solutions):
            out, used = job.run(generator, payload)
            tokens += used
            for table, rows in out.items():
                tables[table] += rows
        return tables, tokens

    whole, whole_tokens = run(1000)
    sharded, sharded_tokens = run(2)
    assert len(whole["stats_train"]) == 1 and len(sharded["stats_train"]) > 1
    assert sharded["labels_train"] == whole["labels_train"]
    key = lambda r: (r["prefix_key"], r["sample_index"])  # noqa: E731 - waves interleave differently
    assert sorted(sharded["rollouts_train"], key=key) == sorted(whole["rollouts_train"], key=key)
    assert sharded_tokens == whole_tokens == sum_stats(sharded["stats_train"])["tokens_generated"]
    assert sum_stats(sharded["stats_train"])["rollouts_requested"] == whole["stats_train"][0]["rollouts_requested"]
    # The same as the scheduler called directly on all samples with the job's verifier.
    direct = sorm_labels(samples, job._verifier(generator), job.labels)
    assert direct.rows == whole["labels_train"]


def test_bad_shard_size_is_refused():
    with pytest.raises(ValueError, match="sorm_shard_solutions"):
        LabelConfig(sorm_shard_solutions=0)


def test_soft_job_rolls_out_what_the_hard_job_did(tiny_lm_dir, tiny_problems):
    """The soft labeller in the actor job, on a real generator: every rollout of every prefix,
    float labels whose ``> 0`` is the hard job's label (the same seeded rollouts), and a float schema."""
    import pyarrow as pa

    samples = samples_for(tiny_problems[:6], per_question=2)
    labels = LabelConfig(sorm_k=3, sorm_max_new_tokens=12, sorm_chunk=1)
    hard_job = SormShardJob(labels, 1.0, 1.0, 0, "train")
    soft_job = SormShardJob(labels, 1.0, 1.0, 0, "train", soft=True)
    generator = HFGenerator(str(tiny_lm_dir), device="cpu", batch_size=16)
    (_, payload), = plan_label_shards(samples, 1000)
    hard, _ = hard_job.run(generator, payload)
    soft, _ = soft_job.run(generator, payload)
    assert [[int(y > 0) for y in r["labels"]] for r in soft["labels_train"]] == \
        [r["labels"] for r in hard["labels_train"]]
    texts = {(r["prefix_key"], r["sample_index"]): r["text"] for r in soft["rollouts_train"]}
    assert all(texts[(r["prefix_key"], r["sample_index"])] == r["text"] for r in hard["rollouts_train"])
    assert soft_job.schema("labels_train").field("labels").type == pa.list_(pa.float64())
    assert hard_job.schema("labels_train").field("labels").type == pa.list_(pa.int64())
