"""VLLMGenerator on vLLM's CPU build (issue 18): the Generator protocol HFGenerator passes, greedy
text equal to HFGenerator's, and the answer-line stop inside the engine. Run with `make test-vllm`
(it builds .venv-vllm); elsewhere the module skips."""

from __future__ import annotations

import pytest
from rollout_support import EOS_PROMPT, EOS_TEXT, memorised_lm_dir, memorised_problems, prompt_of

from glore_ray.config import RolloutConfig
from glore_ray.rollout.engine import RolloutError, RolloutRequest, request_seeds
from glore_ray.rollout.sampler import generate_rows
from glore_ray.rollout.vllm_engine import LINE_KEY, vllm_available
from glore_ray.tasks.steps import split_steps

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(), reason="needs vLLM: make vllm-env")]


@pytest.fixture(scope="module")
def mem_dir(tiny_tokenizer, tmp_path_factory):
    return memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem"), n_head=2)  # heads of 32


@pytest.fixture(scope="module")
def vllm_gen(mem_dir):
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    return VLLMGenerator(mem_dir, RolloutConfig(backend="vllm"))


@pytest.fixture(scope="module")
def hf_gen(mem_dir):
    from glore_ray.rollout.hf_engine import HFGenerator

    return HFGenerator(mem_dir, batch_size=16)


def test_stops_after_the_answer_line_and_at_eos(vllm_gen):
    problems = memorised_problems()
    requests = [RolloutRequest(p.id, prompt_of(p), greedy=True) for p in problems]
    out = vllm_gen.generate(requests + [RolloutRequest("eos", EOS_PROMPT, greedy=True)], 120)
    for problem, (completion,) in zip(problems, out):
        assert completion.text == problem.reference.rstrip("\n") + "\n" and completion.finished
    eos = out[-1][0]
    assert eos.text == EOS_TEXT and eos.finished


def test_the_engine_decodes_nothing_past_the_answer_line(vllm_gen):
    """The model recites junk after each answer line: without the stop it is decoded (and then
    cut); with it, the engine's last token is the EOS right after the answer line's newline."""
    from vllm import SamplingParams

    problem = memorised_problems()[0]
    prompt, answer_text = prompt_of(problem), problem.reference.rstrip("\n") + "\n"
    through_answer = len(vllm_gen.tokenizer(prompt + answer_text)["input_ids"]) - len(vllm_gen.tokenizer(prompt)["input_ids"])
    greedy = {"temperature": 0.0, "max_tokens": 120, "skip_special_tokens": True}
    stopped, = vllm_gen.llm.generate([prompt], SamplingParams(**greedy, extra_args={LINE_KEY: ""}), use_tqdm=False)
    running, = vllm_gen.llm.generate([prompt], SamplingParams(**greedy), use_tqdm=False)
    assert stopped.outputs[0].text == answer_text and stopped.outputs[0].finish_reason == "stop"
    assert len(stopped.outputs[0].token_ids) <= through_answer + 1  # + the forced EOS
    assert running.outputs[0].text.startswith(answer_text) and "junk" in running.outputs[0].text
    assert len(running.outputs[0].token_ids) > through_answer + 3


def test_greedy_text_and_token_counts_equal_hf(vllm_gen, hf_gen, tiny_problems):
    problems = memorised_problems() + tiny_problems[:24]
    requests = [RolloutRequest(p.id, prompt_of(p), greedy=True) for p in problems]
    ours, theirs = vllm_gen.generate(requests, 64), hf_gen.generate(requests, 64)
    assert [(c.text, c.num_tokens, c.finished) for (c,) in ours] == [(c.text, c.num_tokens, c.finished) for (c,) in theirs]


def test_k_samples_are_seeded_and_batch_independent(vllm_gen, tiny_problems):
    target = RolloutRequest(tiny_problems[0].id, prompt_of(tiny_problems[0]), n=4)
    others = [RolloutRequest(p.id, prompt_of(p), n=2) for p in tiny_problems[1:5]]
    alone = vllm_gen.generate([target], 32, 1.0, 1.0, base_seed=2)[0]
    mixed = vllm_gen.generate(others[:2] + [target] + others[2:], 32, 1.0, 1.0, base_seed=2)[2]
    assert [c.seed for c in alone] == request_seeds(target, 2) and [c.sample_index for c in alone] == [0, 1, 2, 3]
    assert [c.text for c in alone] == [c.text for c in mixed]
    assert len({c.text for c in alone}) > 1  # temperature 1: the samples differ
    other_seed = vllm_gen.generate([target], 32, 1.0, 1.0, base_seed=3)[0]
    assert [c.text for c in other_seed] != [c.text for c in alone]
    assert all(1 <= c.num_tokens <= 32 for c in alone)


def test_continues_from_a_prefix_and_grades(vllm_gen):
    problem = memorised_problems()[0]
    prefix = split_steps(problem.reference)[0] + "\n"
    request = RolloutRequest(problem.id, prompt_of(problem), prefix=prefix, prefix_index=0, n=2,
                             answer=problem.answer, greedy=True)
    rows = generate_rows(vllm_gen, [request], 120)
    assert [r["sample_index"] for r in rows] == [0, 1]
    assert all(r["prefix"] + r["text"] == problem.reference.rstrip("\n") + "\n" and r["correct"] for r in rows)


def test_prefix_caching_changes_no_text(vllm_gen, mem_dir, tiny_problems):
    """rollout.prefix_caching is left out of stage digests (config.RESOURCE_FIELDS): sampled
    continuations of shared step prefixes must be the same text with the cache on and off."""
    import gc

    from glore_ray.rollout.vllm_engine import VLLMGenerator

    requests = []
    for p in tiny_problems[:8]:
        steps = split_steps(p.reference)[:-1]
        requests += [RolloutRequest(p.id, prompt_of(p), prefix="".join(s + "\n" for s in steps[: i + 1]),
                                    prefix_index=i, n=4) for i in range(len(steps))]
    cached = vllm_gen.generate(requests, 24, 1.0, 1.0, base_seed=5)
    uncached_gen = VLLMGenerator(mem_dir, RolloutConfig(backend="vllm", prefix_caching=False))
    try:
        uncached = uncached_gen.generate(requests, 24, 1.0, 1.0, base_seed=5)
    finally:
        del uncached_gen
        gc.collect()
    assert [[c.text for c in r] for r in cached] == [[c.text for c in r] for r in uncached]
    assert len({c.text for r in cached for c in r}) > len(requests)  # sampled: samples differ


def test_a_prompt_past_the_context_is_refused(vllm_gen):
    long_prompt = "Q: " + "1 " * (vllm_gen.context + 10) + "\nA: "
    with pytest.raises(RolloutError, match=rf"'too-long'.*context is {vllm_gen.context}"):
        vllm_gen.generate([RolloutRequest("too-long", long_prompt)], 5)
    assert vllm_gen.generate([], 5) == []


def test_a_head_size_the_cpu_kernels_lack_is_refused_naming_the_model(tiny_lm_dir):
    from glore_ray.rollout.vllm_engine import VLLMGenerator

    # tiny_lm_dir: 64 / 4 heads = 16; before, the engine died at its first step (EngineDeadError).
    with pytest.raises(RolloutError, match=rf"{tiny_lm_dir}: head size 16 .* use rollout.backend=hf"):
        VLLMGenerator(str(tiny_lm_dir), RolloutConfig(backend="vllm"))
