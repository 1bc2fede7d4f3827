"""HFGenerator and the rollout records, in-process (no Ray): seeds, stop rule, batch independence."""

from __future__ import annotations

import pytest
import torch
from rollout_support import EOS_PROMPT, EOS_TEXT, memorised_lm_dir, memorised_problems, prompt_of

from glore_ray.config import RolloutConfig
from glore_ray.rollout import hf_engine
from glore_ray.rollout.backends import load_generator
from glore_ray.rollout.engine import (
    RolloutError,
    RolloutRequest,
    answer_line_end,
    cut_at_answer,
    request_seeds,
    rollout_seed,
)
from glore_ray.rollout.hf_engine import HFGenerator, _cache_from_layers, _sample_tokens, _with_room
from glore_ray.rollout.sampler import ROLLOUT_SCHEMA, generate_rows
from glore_ray.tasks.steps import split_steps


@pytest.fixture(scope="module")
def random_gen(tiny_lm_dir):
    torch.set_num_threads(1)
    return HFGenerator(str(tiny_lm_dir), batch_size=16)


@pytest.fixture(scope="module")
def memorised_gen(tiny_tokenizer, tmp_path_factory):
    torch.set_num_threads(1)
    return HFGenerator(memorised_lm_dir(tiny_tokenizer, tmp_path_factory.mktemp("mem")), batch_size=8)


def _requests(problems, n=3, **kw):
    return [RolloutRequest(p.id, prompt_of(p), n=n, answer=p.answer, **kw) for p in problems]


# ---- seeds and the stop rule (pure)


def test_rollout_seed_is_stable_and_keyed_on_every_field():
    seed = rollout_seed(0, "q1", -1, 0, 0)
    assert seed == rollout_seed(0, "q1", -1, 0, 0) and 0 <= seed < 2**63
    assert seed == 5181722964179237436  # pinned: a changed seed function silently changes every rollout
    others = {rollout_seed(1, "q1", -1, 0, 0), rollout_seed(0, "q2", -1, 0, 0), rollout_seed(0, "q1", 0, 0, 0),
              rollout_seed(0, "q1", -1, 1, 0), rollout_seed(0, "q1", -1, 0, 1), rollout_seed(0, "q1", -1, 0, 0, "k")}
    assert seed not in others and len(others) == 6
    assert request_seeds(RolloutRequest("q1", "Q: x\nA: ", n=2), 0) == [seed, rollout_seed(0, "q1", -1, 1, 0)]


def test_stop_rule_finds_the_answer_lines_newline():
    assert answer_line_end("1 + 2 = 3\n#### 3") is None  # not newline-terminated yet
    assert answer_line_end("1 + 2 = 3\n#### 3\nQ: next") == len("1 + 2 = 3\n#### 3\n")
    assert answer_line_end("a = 4\n  #### 4\n") == len("a = 4\n  #### 4\n")
    assert answer_line_end("x #### 4\n") is None  # the line must start with ####
    assert cut_at_answer("1 + 2 = 3\n", "#### 3\njunk") == ("#### 3\n", True)
    assert cut_at_answer("", "1 + 2 = 3\n") == ("1 + 2 = 3\n", False)


def test_sampling_is_inverse_cdf_with_top_p():
    logits = torch.log(torch.tensor([[0.25, 0.75], [0.25, 0.75], [0.25, 0.75]]))
    assert _sample_tokens(logits, [0.1, 0.5, 0.99], [False] * 3, 1.0, 1.0).tolist() == [0, 1, 1]
    assert _sample_tokens(logits, [0.1, 0.5, 0.99], [False] * 3, 1.0, 0.5).tolist() == [1, 1, 1]
    assert _sample_tokens(logits, [0.1, 0.1, 0.1], [True, False, True], 1.0, 1.0).tolist() == [1, 0, 1]


def test_bad_requests_are_refused():
    with pytest.raises(RolloutError, match="n must be >= 1"):
        RolloutRequest("q7", "Q: x\nA: ", n=0)
    with pytest.raises(RolloutError, match="q7.*empty prompt"):
        RolloutRequest("q7", "")


# ---- the transformers backend


def test_n_samples_per_request_with_their_seeds(random_gen, tiny_problems):
    requests = _requests(tiny_problems[:3], n=4)
    out = random_gen.generate(requests, max_new_tokens=12, base_seed=5)
    assert [len(c) for c in out] == [4, 4, 4]
    for request, completions in zip(requests, out):
        assert [c.sample_index for c in completions] == [0, 1, 2, 3]
        assert [c.seed for c in completions] == request_seeds(request, 5)
        assert all(1 <= c.num_tokens <= 12 for c in completions)
    assert len({c.text for c in out[0]}) > 1  # sampled, not greedy


def test_text_does_not_depend_on_batch_mates_or_batch_size(tiny_lm_dir, tiny_problems):
    target = RolloutRequest(tiny_problems[0].id, prompt_of(tiny_problems[0]), prefix="12 + 3 = 15\n",
                            prefix_index=0, n=3)
    others = _requests(tiny_problems[1:6], n=2) + [RolloutRequest("short", "Q: 1\nA: ", n=5)]
    alone = HFGenerator(str(tiny_lm_dir), batch_size=1).generate([target], 20, 0.9, 0.95, base_seed=3)[0]
    mixed = HFGenerator(str(tiny_lm_dir), batch_size=7).generate(others[:3] + [target] + others[3:], 20, 0.9,
                                                                  0.95, base_seed=3)[3]
    assert [c.text for c in alone] == [c.text for c in mixed]
    assert [c.num_tokens for c in alone] == [c.num_tokens for c in mixed]


def test_prefill_in_length_groups_gives_the_same_texts(tiny_lm_dir, tiny_problems):
    """The service's grouped prefill (prompts of very different lengths, each group's cache padded
    and merged for one decode) samples what one padded prefill and a batch of one sample."""
    long_prefix = "".join(f"{i} + 1 = {i + 1}\n" for i in range(12))
    requests = ([RolloutRequest("short", "Q: 1\nA: ", n=2), RolloutRequest("greedy", "Q: 2\nA: ", greedy=True)]
                + [RolloutRequest(f"long-{j}", prompt_of(tiny_problems[0]), prefix=long_prefix, prefix_index=11, n=2)
                   for j in range(3)])  # one length: the grouping's cut falls between short and long
    grouped = HFGenerator(str(tiny_lm_dir), batch_size=16, prefill_call_cost=8)
    calls = []
    forward = grouped._forward_prompts
    grouped._forward_prompts = lambda *a: calls.append(a[0].shape) or forward(*a)
    texts = lambda out: [[c.text for c in cs] for cs in out]
    got = grouped.generate(requests, 16, 0.9, 0.95, base_seed=2)
    assert len(calls) == 2 and calls[0][1] < calls[1][1]  # short prompts, then long ones: two prefills
    assert texts(got) == texts(HFGenerator(str(tiny_lm_dir), batch_size=16).generate(requests, 16, 0.9, 0.95, base_seed=2))
    alone = HFGenerator(str(tiny_lm_dir), batch_size=1)
    assert texts(got) == [texts(alone.generate([r], 16, 0.9, 0.95, base_seed=2))[0] for r in requests]
    with pytest.raises(RolloutError, match="prefill_call_cost"):
        HFGenerator(str(tiny_lm_dir), prefill_call_cost=-1)


def test_reserved_kv_layer_is_a_growing_cache_written_in_place():
    torch.manual_seed(0)
    keys, values = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    reserved, growing = _with_room(_cache_from_layers([(keys, values)]), 2), _cache_from_layers([(keys, values)])
    layer = reserved.layers[0]
    buffer = layer.key_buffer
    assert type(layer).__name__ == "ReservedLayer" and buffer.shape[-2] == 7
    for step in range(4):  # the third token is past the reservation: the layer grows, as a DynamicLayer would
        new_keys, new_values = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
        got, want = reserved.update(new_keys, new_values, 0), growing.update(new_keys, new_values, 0)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
        assert (layer.key_buffer is buffer) == (step < 2)  # in place while the room lasts
    index = torch.tensor([2, 0])
    reserved.batch_select_indices(index)
    growing.batch_select_indices(index)
    assert reserved.get_seq_length() == growing.get_seq_length() == 9
    assert torch.equal(layer.keys, growing.layers[0].keys) and torch.equal(layer.values, growing.layers[0].values)


def test_decode_into_reserved_cache_gives_the_growing_caches_texts(memorised_gen, monkeypatch):
    """Rows that stop at different steps (answer line, EOS, budget) leave the reserved cache; the
    texts match a decode whose cache grows by concatenation, sampled and greedy."""
    problems = memorised_problems()
    requests = (_requests(problems, n=2) + _requests(problems[:2], n=1, greedy=True)
                + [RolloutRequest("eos", EOS_PROMPT, greedy=True)])
    layer_types, real = [], hf_engine._with_room

    def with_room(cache, room):
        cache = real(cache, room)
        layer_types.append(type(cache.layers[0]).__name__)
        return cache

    monkeypatch.setattr(hf_engine, "_with_room", with_room)
    texts = lambda out: [[(c.text, c.num_tokens, c.finished) for c in cs] for cs in out]
    reserving = HFGenerator(memorised_gen.model, memorised_gen.tokenizer, batch_size=8, reserve_cache=True)
    reserved = texts(reserving.generate(requests, 40, 0.9, 0.95, base_seed=3))
    assert set(layer_types) == {"ReservedLayer"}
    assert reserved == texts(memorised_gen.generate(requests, 40, 0.9, 0.95, base_seed=3))
    assert len(layer_types) == 2  # the default generator's cache grows: it never reserved
    assert len({n for cs in reserved for _, n, _ in cs}) > 2  # rows did leave at different steps


def test_same_seed_same_text_other_seed_other_text(random_gen, tiny_problems):
    requests = _requests(tiny_problems[:2], n=3)
    first = random_gen.generate(requests, 16, base_seed=0)
    again = random_gen.generate(requests, 16, base_seed=0)
    other = random_gen.generate(requests, 16, base_seed=1)
    texts = lambda out: [c.text for cs in out for c in cs]
    assert texts(first) == texts(again)
    assert texts(first) != texts(other)


def test_greedy_matches_transformers_generate(random_gen, tiny_problems):
    """Our KV-cache loop with left padding gives the same greedy tokens as ``model.generate``."""
    requests = _requests(tiny_problems[:4], n=2, greedy=True)
    out = random_gen.generate(requests, 15)
    tok = random_gen.tokenizer
    for request, completions in zip(requests, out):
        assert completions[0].text == completions[1].text
        ids = tok(request.prompt, return_tensors="pt")
        ref = random_gen.model.generate(**ids, max_new_tokens=15, do_sample=False, pad_token_id=tok.pad_token_id)
        expected = tok.decode(ref[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert cut_at_answer("", expected)[0] == completions[0].text


def test_stops_after_the_answer_line_and_at_eos(memorised_gen):
    problems = memorised_problems()
    requests = _requests(problems, n=1, greedy=True) + [RolloutRequest("eos", EOS_PROMPT, greedy=True)]
    out = memorised_gen.generate(requests, 120)
    for problem, (completion,) in zip(problems, out):
        assert completion.text == problem.reference.rstrip("\n") + "\n"  # the junk after the answer line is cut off
        assert completion.finished
    eos = out[-1][0]
    assert eos.text == EOS_TEXT and eos.finished
    assert eos.num_tokens == len(memorised_gen.tokenizer(EOS_TEXT)["input_ids"]) + 1  # EOS counted


def test_continues_from_a_prefix_and_grades(memorised_gen):
    problem = memorised_problems()[0]
    steps = split_steps(problem.reference)
    prefix = steps[0] + "\n"
    request = RolloutRequest(problem.id, prompt_of(problem), prefix=prefix, prefix_index=0, n=2,
                             answer=problem.answer, greedy=True)
    rows = generate_rows(memorised_gen, [request], 120)
    assert [r["sample_index"] for r in rows] == [0, 1]
    for row in rows:
        assert set(row) == set(ROLLOUT_SCHEMA.names)
        assert row["prefix"] + row["text"] == problem.reference.rstrip("\n") + "\n"
        assert row["correct"] and row["finished"] and row["prefix_index"] == 0
    wrong = RolloutRequest(problem.id, prompt_of(problem), n=1, answer="-1", greedy=True)
    assert generate_rows(memorised_gen, [wrong], 120)[0]["correct"] is False


def test_max_new_tokens_and_context_limits(random_gen, tiny_problems):
    out = random_gen.generate(_requests(tiny_problems[:1], n=2), max_new_tokens=5)
    assert all(c.num_tokens == 5 and not c.finished for c in out[0])
    context = random_gen.context
    long_prompt = "Q: " + "1 " * (context + 10) + "\nA: "
    with pytest.raises(RolloutError, match=r"'too-long'.*context is 256"):
        random_gen.generate([RolloutRequest("too-long", long_prompt)], 5)
    near = "Q: " + "1 " * (context // 2 - 6) + "\nA: "  # a few tokens short of the context
    (completion,) = random_gen.generate([RolloutRequest("near", near)], 50)[0]
    assert len(random_gen.tokenizer(near)["input_ids"]) + completion.num_tokens <= context
    assert random_gen.generate([], 5) == []


def test_unreadable_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(RolloutError, match="does not exist"):
        HFGenerator(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RolloutError, match="no config.json"):
        load_generator(str(tmp_path / "empty"), RolloutConfig(device="cpu"))


def test_vllm_engine_arguments_follow_the_device(tiny_lm_dir, monkeypatch):
    """No vLLM needed: what VLLMGenerator would hand vllm.LLM on a GPU and on a CPU."""
    from glore_ray.rollout.vllm_engine import engine_args

    cfg = RolloutConfig(backend="vllm", gpu_memory_utilization=0.5, cpu_kvcache_gib=3)
    gpu = engine_args(str(tiny_lm_dir), cfg, cuda=True)
    assert gpu == {"tensor_parallel_size": 1, "dtype": "auto", "gpu_memory_utilization": 0.5}
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cpu = engine_args(str(tiny_lm_dir), cfg, cuda=False)
    assert cpu == {"dtype": "float32", "enable_chunked_prefill": False}  # the checkpoint's dtype, not bfloat16
    import os

    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "3"
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")  # a user's setting wins
    engine_args(str(tiny_lm_dir), cfg, cuda=False)
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "7"
    with pytest.raises(RolloutError, match="tensor_parallel=2: vLLM on CPU runs one process"):
        engine_args(str(tiny_lm_dir), RolloutConfig(backend="vllm", tensor_parallel=2), cuda=False)
