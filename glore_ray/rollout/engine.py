"""The rollout layer's core: requests, completions, seeds and the transformers backend (DESIGN §5).

Every stage samples through one :class:`Generator` protocol: Expert Iteration's K=96 samples
per question, the SORM's K=8 verification rollouts from every step prefix (paper 3.1 step 2),
greedy drafts for evaluation and refinement. A sample's text depends only on (model,
prompt+prefix, seed, sampling params), never on its batch: the SORM labeller's efficient
scheduler proves its labels equal the naive procedure's by relying on exactly that.

>>> rollout_seed(0, "q1", -1, 3, 0) == rollout_seed(0, "q1", -1, 3, 0)
True
>>> rollout_seed(0, "q1", -1, 3, 0) != rollout_seed(0, "q1", -1, 4, 0)
True
>>> answer_line_end("3 + 4 = 7\\n#### 7\\nmore")
17
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from glore_ray.models.batching import length_groups

ANSWER_MARK = "####"


def _cache_field_name() -> str:
    """The KV cache's keyword and output field: transformers 5.x renamed ``past_key_values`` to ``cache``
    (the old name still works there, with a deprecation warning); older releases know only the old one."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class RolloutError(ValueError):
    """A rollout request or backend that cannot be used as given (says which and why)."""


@dataclass(frozen=True)
class RolloutRequest:
    """One prompt (plus an optional solution prefix) to continue ``n`` times."""

    question_id: str
    prompt: str  # the student prompt "Q: ...\nA: "
    prefix: str = ""  # solution so far, one newline-terminated step per line; generation continues after it
    prefix_index: int = -1  # -1: from the question; i: after step i (SORM verification, paper 3.1)
    n: int = 1  # samples
    answer: str = ""  # reference answer, for the grader's verdict
    round: int = 0  # Expert Iteration round (enters the seed)
    greedy: bool = False  # argmax decoding regardless of temperature (drafts)
    seed_key: str = ""  # extra key mixed into the seed, e.g. a hash of the prefix text

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise RolloutError(f"request {self.question_id!r} (prefix {self.prefix_index}): n must be >= 1, got {self.n!r}")
        if not self.prompt:
            raise RolloutError(f"request {self.question_id!r}: empty prompt")

    @property
    def text(self) -> str:
        """What the model is conditioned on."""
        return self.prompt + self.prefix


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a request."""

    sample_index: int
    text: str  # the generated continuation only (cut after the answer line's newline)
    num_tokens: int  # tokens generated, EOS included
    finished: bool  # hit the answer line's newline or EOS (False: ran out of tokens or context)
    seed: int


class Generator(Protocol):
    """A backend that samples continuations (HF on any torch device, vLLM on GPUs)."""

    def generate(
        self,
        requests: Sequence[RolloutRequest],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        base_seed: int = 0,
    ) -> list[list[Completion]]:
        """Per request, its ``n`` completions in sample order."""
        ...


def rollout_seed(base_seed: int, question_id: str, prefix_index: int, sample_index: int, round: int = 0,
                 seed_key: str = "") -> int:
    """A stable 63-bit seed from the sample's identity (sha256, never Python's salted ``hash``)."""
    key = f"{base_seed}|{question_id}|{prefix_index}|{sample_index}|{round}|{seed_key}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def request_seeds(request: RolloutRequest, base_seed: int) -> list[int]:
    return [rollout_seed(base_seed, request.question_id, request.prefix_index, i, request.round, request.seed_key)
            for i in range(request.n)]


def answer_line_end(solution: str, start: int = 0) -> int | None:
    """Index just past the newline that ends the first line starting with ``####`` whose newline
    lies beyond ``start``; None while there is none (the stop rule, DESIGN §3)."""
    line_start = 0
    while True:
        newline = solution.find("\n", line_start)
        if newline < 0:
            return None
        if newline >= start and solution[line_start:newline].lstrip().startswith(ANSWER_MARK):
            return newline + 1
        line_start = newline + 1


def cut_at_answer(prefix: str, text: str) -> tuple[str, bool]:
    """``text`` cut after the answer line's newline, and whether it was cut there."""
    end = answer_line_end(prefix + text, start=len(prefix))
    return (text, False) if end is None else (text[: end - len(prefix)], True)


# --------------------------------------------------------------------------------------------
# Transformers backend


@dataclass
class _Sample:
    """One sequence of a decode batch (bookkeeping only; tensors live in the loop)."""

    request: int
    sample_index: int
    prompt_ids: list[int]
    prefix: str
    seed: int
    greedy: bool
    budget: int  # max new tokens for this row (max_new_tokens, capped by the context)


class HFGenerator:
    """transformers causal LM behind our own KV-cache decode loop (left padding, batched).

    Why not ``model.generate``: its sampling draws from one global RNG, so a sample's text would
    depend on its batch mates. Here each row draws one uniform per step from its own
    ``random.Random(seed)`` and samples by inverse CDF, so a row's text depends only on its own
    logits and seed. Rows leave the batch (and the KV cache) as soon as they stop.

    ``prefill_call_cost`` (0: off) lets a batch of mixed prompt lengths prefill in length groups
    (:func:`~glore_ray.models.batching.length_groups`; the value is one more forward call's cost
    in padded tokens), merged into one left-padded cache for the decode. The service turns it on
    for its small, arbitrary batches on CPU; the batch stages sort thousands of prompts by length
    before batching and leave it off.
    """

    def __init__(self, model_path_or_model, tokenizer=None, device: str = "cpu", batch_size: int = 64,
                 dtype: str | None = None, prefill_call_cost: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(pick_device(device))
        if isinstance(model_path_or_model, (str, Path)):
            path = _check_model_path(model_path_or_model)
            kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
        else:
            model = model_path_or_model
            if tokenizer is None:
                raise RolloutError("HFGenerator: pass the tokenizer along with a model object")
        if batch_size < 1:
            raise RolloutError(f"HFGenerator: batch_size must be >= 1, got {batch_size}")
        if prefill_call_cost < 0:
            raise RolloutError(f"HFGenerator: prefill_call_cost must be >= 0, got {prefill_call_cost}")
        self.model = model.to(self.device).eval()
        self._cache_field = _cache_field_name()
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.prefill_call_cost = prefill_call_cost
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.context = _context_length(model.config)
        self._newline_ids = _newline_token_ids(tokenizer)

    def generate(self, requests, max_new_tokens, temperature=1.0, top_p=1.0, base_seed=0):
        if max_new_tokens < 1:
            raise RolloutError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        samples = self._expand(requests, max_new_tokens, temperature, base_seed)
        # Batch mates never change a row's text, so sort by length to cut padding.
        order = sorted(range(len(samples)), key=lambda i: len(samples[i].prompt_ids))
        out: list[list[Completion | None]] = [[None] * r.n for r in requests]
        for start in range(0, len(order), self.batch_size):
            batch = [samples[i] for i in order[start:start + self.batch_size]]
            for sample, completion in zip(batch, self._decode(batch, temperature, top_p)):
                out[sample.request][sample.sample_index] = completion
        return out

    def _expand(self, requests, max_new_tokens, temperature, base_seed) -> list[_Sample]:
        samples = []
        for r_idx, request in enumerate(requests):
            ids = self.tokenizer(request.text)["input_ids"]
            if len(ids) >= self.context:
                raise RolloutError(
                    f"request {request.question_id!r} (prefix {request.prefix_index}): prompt+prefix is "
                    f"{len(ids)} tokens, the model's context is {self.context}")
            budget = min(max_new_tokens, self.context - len(ids))
            greedy = request.greedy or temperature == 0
            for s_idx, seed in enumerate(request_seeds(request, base_seed)):
                samples.append(_Sample(r_idx, s_idx, ids, request.prefix, seed, greedy, budget))
        return samples

    def _decode(self, batch: list[_Sample], temperature: float, top_p: float) -> list[Completion]:
        import torch

        rngs = [random.Random(s.seed) for s in batch]
        generated: list[list[int]] = [[] for _ in batch]
        finished = [False] * len(batch)
        input_ids, attention = self._left_pad([s.prompt_ids for s in batch])  # [B, L]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # [B, L]: pads never shift real positions
        live = list(range(len(batch)))  # batch rows still decoding, in cache order
        with torch.inference_mode():
            logits, cache = self._prefill([s.prompt_ids for s in batch], input_ids, attention, positions)
            while live:
                uniforms = [rngs[i].random() for i in live]
                greedy = [batch[i].greedy for i in live]
                tokens = _sample_tokens(logits, uniforms, greedy, temperature, top_p).tolist()
                keep = []
                for slot, (row, token) in enumerate(zip(live, tokens)):
                    generated[row].append(token)
                    if self._stops(batch[row], generated[row], token):
                        finished[row] = True
                    elif len(generated[row]) < batch[row].budget:
                        keep.append(slot)
                if not keep:
                    break
                if len(keep) < len(live):
                    index = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(index)
                    attention, positions = attention[index], positions[index]
                    tokens = [tokens[k] for k in keep]
                    live = [live[k] for k in keep]
                input_ids = torch.tensor(tokens, device=self.device)[:, None]  # [b, 1]
                attention = torch.cat([attention, attention.new_ones(len(live), 1)], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                 use_cache=True, **{self._cache_field: cache})
                cache = getattr(out, self._cache_field)
                logits = out.logits[:, -1, :].float()  # [b, V]
        return [self._completion(s, ids, done) for s, ids, done in zip(batch, generated, finished)]

    def _forward_prompts(self, input_ids, attention, positions):
        """One prefill forward: the last position's logits [b, V] and the KV cache."""
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        return out.logits[:, -1, :].float(), getattr(out, self._cache_field)

    def _prefill(self, rows: list[list[int]], input_ids, attention, positions):
        """The batch's prefill: one padded forward, or (``prefill_call_cost``) one forward per
        length group, each group's keys and values then left-padded to the batch's width and
        stacked in batch order. Pad positions stay masked, so the decode sees the same cache."""
        import torch

        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        groups = length_groups([len(rows[i]) for i in order], self.prefill_call_cost) if self.prefill_call_cost else []
        if len(groups) < 2:
            return self._forward_prompts(input_ids, attention, positions)
        width = input_ids.shape[1]
        logits, caches = [], []
        for start, end in groups:
            ids, mask = self._left_pad([rows[i] for i in order[start:end]])
            group_logits, cache = self._forward_prompts(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))
            kv = _cache_layers(cache)
            if kv is None:  # a cache we can't take apart (sliding-window layers, ...): no split
                return self._forward_prompts(input_ids, attention, positions)
            logits.append(group_logits)
            caches.append([[torch.nn.functional.pad(t, (0, 0, width - t.shape[-2], 0)) for t in pair] for pair in kv])
        # The groups hold the rows in length order; ``back`` puts them in batch order.
        back = torch.empty(len(rows), dtype=torch.long, device=self.device)
        back[torch.tensor(order, device=self.device)] = torch.arange(len(rows), device=self.device)

        def stack(tensors):
            return torch.cat(tensors, dim=0).index_select(0, back)

        merged = [(stack([c[i][0] for c in caches]), stack([c[i][1] for c in caches])) for i in range(len(caches[0]))]
        return stack(logits), _cache_from_layers(merged)

    def _stops(self, sample: _Sample, ids: list[int], token: int) -> bool:
        if token == self.eos_id:
            return True
        if token not in self._newline_ids:
            return False
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return answer_line_end(sample.prefix + text, start=len(sample.prefix)) is not None

    def _completion(self, sample: _Sample, ids: list[int], finished: bool) -> Completion:
        text, _ = cut_at_answer(sample.prefix, self.tokenizer.decode(ids, skip_special_tokens=True))
        return Completion(sample.sample_index, text, len(ids), finished, sample.seed)

    def _left_pad(self, rows: list[list[int]]):
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
        return ids.to(self.device), mask.to(self.device)


def _sample_tokens(logits, uniforms: list[float], greedy: list[bool], temperature: float, top_p: float):
    """One token per row by inverse CDF over the (top-p truncated) softmax; argmax for greedy rows.

    logits: [b, V] float32; uniforms: one U[0,1) per row from the row's own RNG.
    """
    import torch

    picks = logits.argmax(-1)  # [b]
    sampled = [i for i, g in enumerate(greedy) if not g]
    if not sampled:
        return picks
    rows = torch.tensor(sampled, device=logits.device)
    probs = torch.softmax(logits[rows] / temperature, dim=-1)  # [s, V]
    if top_p < 1.0:
        probs, vocab = probs.sort(dim=-1, descending=True, stable=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)  # keep the smallest set with mass >= top_p
    else:
        vocab = None
    cdf = probs.cumsum(-1)  # [s, V]
    u = torch.tensor([uniforms[i] for i in sampled], device=logits.device, dtype=cdf.dtype)[:, None]
    choice = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=cdf.shape[-1] - 1)  # [s, 1]
    tokens = choice if vocab is None else vocab.gather(-1, choice)
    picks[rows] = tokens[:, 0]
    return picks


def _cache_layers(cache) -> list[tuple] | None:
    """Per layer (keys, values) [b, heads, t, d] of a full-attention KV cache, across transformers
    releases (``layers`` since 4.56, ``key_cache``/``value_cache`` or legacy tuples before); None
    for any other kind of cache (sliding-window or quantized layers), which the caller leaves whole."""
    if isinstance(cache, tuple):  # the legacy format: per layer (keys, values)
        return [tuple(pair[:2]) for pair in cache]
    layers = getattr(cache, "layers", None)
    if layers is not None:
        if any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            return None
        return [(layer.keys, layer.values) for layer in layers]
    if hasattr(cache, "key_cache") and type(cache).__name__ == "DynamicCache":
        return list(zip(cache.key_cache, cache.value_cache))
    return None


def _cache_from_layers(layers):
    """A DynamicCache holding the given per-layer (keys, values), built through its public update."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for index, (keys, values) in enumerate(layers):
        cache.update(keys, values, index)
    return cache


def pick_device(device: str) -> str:
    """``auto`` -> cuda when one is visible, else cpu; anything else as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_model_path(path) -> str:
    """A local checkpoint directory must hold config.json; anything else is taken as a hub id."""
    path = str(path)
    local = Path(path)
    if local.exists() and not (local / "config.json").is_file():
        raise RolloutError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise RolloutError(f"{path}: model path does not exist")
    return path


def _context_length(config) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 1 << 30


def _newline_token_ids(tokenizer) -> frozenset[int]:
    """Ids whose text holds a newline: only after one of them can the stop rule fire."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, t in enumerate(texts) if "\n" in t)


def load_generator(path: str, rollout_cfg, device: str | None = None, prefill_call_cost: int = 0):
    """The backend named by ``rollout_cfg.backend`` for the checkpoint at ``path`` (``prefill_call_cost``:
    see :class:`HFGenerator`; vLLM schedules its own prefills)."""
    if rollout_cfg.backend == "vllm":
        from glore_ray.rollout.vllm_engine import VLLMGenerator

        return VLLMGenerator(_check_model_path(path), rollout_cfg)
    return HFGenerator(path, device=device or rollout_cfg.device, batch_size=rollout_cfg.batch_size,
                       dtype=rollout_cfg.dtype, prefill_call_cost=prefill_call_cost)
