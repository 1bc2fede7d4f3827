"""The vLLM backend: offline ``vllm.LLM`` with prefix caching (docs/architecture.md §5), on a GPU or,
through vLLM's CPU build, on a CPU (``make vllm-env``).

vLLM is imported only here and in ``vllm_stop.py``, and only when a VLLMGenerator is built, so the
package imports on machines without it (tests skip cleanly). Each *sample* is its own vLLM request
with ``n=1`` and its own seed (engine.rollout_seed): that keeps a sample's text a function of its
identity, not of how many siblings it has, which the SORM scheduler relies on (docs/architecture.md
§5). Prefix caching makes the K copies of a prompt (and the shared step prefixes of SORM
verification) cost one prefill.

A rollout ends at its answer line, as HFGenerator's does: vLLM's stop strings are literal, so
the logits processor ``vllm_stop.AnswerLineStop`` ends each request with EOS once the newline of
a line starting with ``####`` is out. The text is still cut by engine.cut_at_answer (a no-op then).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from glore_ray.rollout.engine import Completion, RolloutError, cut_at_answer, request_seeds

ANSWER_STOP = "glore_ray.rollout.vllm_stop:AnswerLineStop"  # loaded by name in vLLM's engine process
LINE_KEY = "glore_answer_line"  # SamplingParams.extra_args: the line a request starts in (opts it in)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMGenerator:
    """``Generator`` on one GPU, one tensor-parallel group of GPUs, or the CPU (vLLM's CPU build)."""

    def __init__(self, model_path: str, rollout_cfg, llm=None):
        if llm is None:
            try:
                from vllm import LLM
            except ImportError as err:
                raise RolloutError("rollout.backend=vllm needs vLLM: pip install 'glore-ray[gpu]' on a GPU machine, "
                                   "or `make vllm-env` for vLLM's CPU build (README)") from err
            llm = LLM(model=model_path, enable_prefix_caching=rollout_cfg.prefix_caching, seed=0,
                      logits_processors=[ANSWER_STOP],
                      **engine_args(model_path, rollout_cfg, _cuda_visible()))
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
            line = {LINE_KEY: request.text.rsplit("\n", 1)[-1]}  # the line its rollouts start in
            for s_idx, seed in enumerate(request_seeds(request, base_seed)):
                prompts.append(request.text)
                params.append(SamplingParams(
                    n=1, seed=seed, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                    max_tokens=min(max_new_tokens, self.context - n_prompt), skip_special_tokens=True,
                    extra_args=line))
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


def engine_args(model_path: str, rollout_cfg, cuda: bool) -> dict:
    """Device-specific ``vllm.LLM`` arguments. A GPU sizes its KV cache as a share of GPU memory;
    the CPU build by ``VLLM_CPU_KVCACHE_SPACE`` (GiB), set from ``rollout.cpu_kvcache_gib`` unless
    the environment already has it. On CPU the weights keep the checkpoint's dtype when none is
    configured (vLLM's "auto" would cast a float32 checkpoint to bfloat16 there, and greedy text
    would drift from HFGenerator's)."""
    if cuda:
        return {"tensor_parallel_size": rollout_cfg.tensor_parallel, "dtype": rollout_cfg.dtype or "auto",
                "gpu_memory_utilization": rollout_cfg.gpu_memory_utilization}
    if rollout_cfg.tensor_parallel != 1:
        raise RolloutError(f"rollout.tensor_parallel={rollout_cfg.tensor_parallel}: vLLM on CPU runs one process")
    config = _checkpoint_config(model_path)
    _check_cpu_head_size(model_path, config)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(rollout_cfg.cpu_kvcache_gib))
    # No chunked prefill on CPU: when a prompt's prefill is split over steps, vLLM (0.32) rewinds
    # that request's seeded torch.Generator with set_offset, which CPU generators do not have, and
    # the engine dies ("CPU Generator does not use offset"). Every sample here is seeded.
    return {"dtype": rollout_cfg.dtype or str(config.get("dtype") or config.get("torch_dtype") or "auto"),
            "enable_chunked_prefill": False}


def _checkpoint_config(model_path: str) -> dict:
    """An HF checkpoint's config.json ({} for a hub id or a directory without one)."""
    path = Path(model_path) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _check_cpu_head_size(model_path: str, config: dict) -> None:
    """vLLM's CPU attention kernels take only some head sizes; any other kills the engine at its
    first step (``EngineDeadError``), far from the cause. Refuse it here, naming the checkpoint."""
    if not config.get("num_attention_heads") or not config.get("hidden_size"):
        return
    head = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend
    except ImportError:  # another vLLM layout: let the engine decide
        return
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head not in supported:
        raise RolloutError(f"{model_path}: head size {head} (hidden_size {config['hidden_size']} / "
                           f"{config['num_attention_heads']} heads) is not one vLLM's CPU attention supports "
                           f"({supported}); use rollout.backend=hf for this model")


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


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
