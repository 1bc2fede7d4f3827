"""The vLLM backend (GPU extra): offline ``vllm.LLM`` with prefix caching (docs/architecture.md §5).

vLLM is imported only here, and only when a VLLMGenerator is built, so the package imports on
machines without it (tests skip cleanly). Each *sample* is its own vLLM request with ``n=1`` and
its own seed (engine.rollout_seed): that keeps a sample's text a function of its identity, not of
how many siblings it has, which the SORM scheduler relies on (docs/architecture.md §5). Prefix caching makes the
K copies of a prompt (and the shared step prefixes of SORM verification) cost one prefill.

vLLM's stop strings are literal, so it cannot stop at "the newline that ends a line starting
with ####": a rollout runs to EOS or max_tokens and is then cut by the same rule as HFGenerator's
(engine.cut_at_answer), its token count re-derived from the kept text. The tokens after the answer
line are wasted (a gap: a custom logits processor could end them early).
"""

from __future__ import annotations

from glore_ray.rollout.engine import Completion, RolloutError, cut_at_answer, request_seeds


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMGenerator:
    """``Generator`` on one GPU or one tensor-parallel group of GPUs."""

    def __init__(self, model_path: str, rollout_cfg, llm=None):
        if llm is None:
            try:
                from vllm import LLM
            except ImportError as err:
                raise RolloutError("rollout.backend=vllm needs vLLM: pip install 'glore-ray[gpu]' on a GPU machine"
                                   ) from err
            llm = LLM(model=model_path, tensor_parallel_size=rollout_cfg.tensor_parallel,
                      gpu_memory_utilization=rollout_cfg.gpu_memory_utilization, enable_prefix_caching=True,
                      dtype=rollout_cfg.dtype or "auto", seed=0)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.context = _max_model_len(llm)

    def generate(self, requests, max_new_tokens, temperature=1.0, top_p=1.0, base_seed=0):
        from vllm import SamplingParams

        prompts, params, owners = [], [], []
        for r_idx, request in enumerate(requests):
            n_prompt = len(self.tokenizer(request.text)["input_ids"])
            if n_prompt >= self.context:
                raise RolloutError(f"request {request.question_id!r} (prefix {request.prefix_index}): prompt+prefix "
                                   f"is {n_prompt} tokens, the model's context is {self.context}")
            greedy = request.greedy or temperature == 0
            for s_idx, seed in enumerate(request_seeds(request, base_seed)):
                prompts.append(request.text)
                params.append(SamplingParams(
                    n=1, seed=seed, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                    max_tokens=min(max_new_tokens, self.context - n_prompt), skip_special_tokens=True))
                owners.append((r_idx, s_idx, seed))
        out: list[list] = [[None] * r.n for r in requests]
        results = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for (r_idx, s_idx, seed), result in zip(owners, results):
            out[r_idx][s_idx] = self._completion(requests[r_idx].prefix, s_idx, seed, result.outputs[0])
        return out

    def _completion(self, prefix: str, sample_index: int, seed: int, output) -> Completion:
        text, cut = cut_at_answer(prefix, output.text)
        ids = list(output.token_ids)
        if cut:  # tokens up to the one that completed the answer line
            ids = ids[: _tokens_covering(self.tokenizer, ids, len(text))]
        finished = cut or output.finish_reason == "stop"
        return Completion(sample_index, text, len(ids), finished, seed)


def _tokens_covering(tokenizer, ids: list[int], n_chars: int) -> int:
    """The fewest leading tokens whose decoded text reaches ``n_chars`` characters."""
    lo, hi = 1, len(ids)
    while lo < hi:  # decoded length grows with the token count: binary search
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= n_chars:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _max_model_len(llm) -> int:
    """The engine's context length (where it lives moved between vLLM versions)."""
    engine = llm.llm_engine
    config = getattr(engine, "model_config", None) or engine.vllm_config.model_config
    return int(config.max_model_len)
