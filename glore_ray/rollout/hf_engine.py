"""The transformers backend (docs/architecture.md §5): our own batched KV-cache decode loop on any torch device.

The vLLM backend (vllm_engine.py) serves GPUs at scale; this one runs everywhere, the tiny world
on CPU included, and both keep engine.py's contract: a sample's text depends only on its identity
and seed, and it is cut by the same stop rule (engine.cut_at_answer).
"""

from __future__ import annotations

import functools
import inspect
import random
from dataclasses import dataclass
from pathlib import Path

from glore_ray.models.batching import length_groups
from glore_ray.rollout.engine import (
    Completion,
    RolloutError,
    answer_line_end,
    check_model_path,
    cut_at_answer,
    pick_device,
    request_seeds,
)


def _cache_field_name() -> str:
    """The KV cache's keyword and output field: transformers 5.x renamed ``past_key_values`` to ``cache``
    (the old name still works there, with a deprecation warning); older releases know only the old one."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


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

    ``reserve_cache`` (off by default) gives the decode a KV cache with room reserved for the
    batch's budget, written in place (see _with_room), instead of one that grows by concatenation
    (transformers' DynamicCache). The texts are the same either way; which is faster depends on
    the context length (_with_room), so the service turns it on for its long refiner prompts on
    CPU and the batch stages' short prompts keep the growing cache.
    """

    def __init__(self, model_path_or_model, tokenizer=None, device: str = "cpu", batch_size: int = 64,
                 dtype: str | None = None, prefill_call_cost: int = 0, reserve_cache: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(pick_device(device))
        if isinstance(model_path_or_model, (str, Path)):
            path = check_model_path(model_path_or_model)
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
        self.prefill_call_cost, self.reserve_cache = prefill_call_cost, reserve_cache
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
        rows = [s.prompt_ids for s in batch]
        input_ids, attention = self._left_pad(rows)  # [B, L]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # [B, L]: pads never shift real positions
        live = list(range(len(batch)))  # batch rows still decoding, in cache order
        with torch.inference_mode():
            logits, cache = self._prefill(rows, input_ids, attention, positions)
            if self.reserve_cache:
                cache = _with_room(cache, max(s.budget for s in batch))
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


def _with_room(cache, room: int):
    """The prefill's cache with ``room`` positions reserved after it in every layer, so each decode
    step writes its keys and values in place rather than re-copying the whole cache (``torch.cat``).
    The attention then reads strided views, which its CPU kernel reads more slowly, so this pays
    only once the context is long (bench/rollouts.py measures it against the plain cache). A cache
    we can't take apart (see _cache_layers), or a transformers without ``Cache(layers=)``, stays as
    it is."""
    layers, layer_type = _cache_layers(cache), _reserved_layer_type()
    if layers is None or layer_type is None:
        return cache
    from transformers.cache_utils import Cache

    return Cache(layers=[layer_type(keys, values, room) for keys, values in layers])


@functools.cache
def _reserved_layer_type():
    """``ReservedLayer``: a DynamicLayer whose keys/values are views of buffers with spare
    positions (None before transformers 4.56, whose caches have no layer objects)."""
    try:
        from transformers.cache_utils import Cache, DynamicLayer
    except ImportError:
        return None
    if "layers" not in inspect.signature(Cache).parameters:
        return None

    class ReservedLayer(DynamicLayer):
        def __init__(self, keys, values, room: int):
            super().__init__()
            self.device, self.is_initialized, self.length, self.room = keys.device, True, keys.shape[-2], room
            self.key_buffer, self.value_buffer = _padded_right(keys, room), _padded_right(values, room)
            self._expose()

        def _expose(self) -> None:
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.length + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:  # past the reservation: grow it, as DynamicLayer would
                self.key_buffer = _padded_right(self.keys, end - self.length + self.room)
                self.value_buffer = _padded_right(self.values, end - self.length + self.room)
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self.length = end
            self._expose()
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            # Copy the cached positions only; the room past them is filled by later steps.
            self.key_buffer = _padded_right(self.keys[indices], self.key_buffer.shape[-2] - self.length)
            self.value_buffer = _padded_right(self.values[indices], self.value_buffer.shape[-2] - self.length)
            self._expose()

    return ReservedLayer


def _padded_right(tensor, room: int):
    """``tensor`` [b, h, t, d] copied into a new [b, h, t + room, d] buffer (the tail uninitialised)."""
    b, h, t, d = tensor.shape
    buffer = tensor.new_empty(b, h, t + room, d)
    buffer[:, :, :t] = tensor
    return buffer


def _cache_from_layers(layers):
    """A DynamicCache holding the given per-layer (keys, values), built through its public update."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for index, (keys, values) in enumerate(layers):
        cache.update(keys, values, index)
    return cache


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
