"""Stop a vLLM rollout at the end of its answer line (the stop rule, docs/architecture.md §3).

vLLM's stop strings are literal, so "the newline that ends a line starting with ####" is a
logits processor (vLLM's V1 interface): it follows each request's output tokens, and once the
answer line's newline is out, the next token can only be EOS. Nothing past the answer line is
decoded, so a rollout costs what HFGenerator's does.

Imported by vLLM's engine core from its name (``vllm_engine.ANSWER_STOP``), and only where vLLM is
installed; a request opts in through ``SamplingParams.extra_args[LINE_KEY]``, the text of the line
it starts in (its prompt and prefix may end mid-line).
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from glore_ray.rollout.vllm_engine import LINE_KEY
from glore_ray.tasks.grading import ANSWER_MARK


class _Line:
    """One request's progress: its live output tokens, how many were read, the open line."""

    __slots__ = ("tokens", "read", "line", "done")

    def __init__(self, tokens: list[int], line: str):
        self.tokens, self.read, self.line, self.done = tokens, 0, line, False

    def advance(self, pieces: list[str]) -> None:
        while not self.done and self.read < len(self.tokens):
            text = pieces[self.tokens[self.read]]
            self.read += 1
            while "\n" in text:
                head, text = text.split("\n", 1)
                if (self.line + head).lstrip().startswith(ANSWER_MARK):
                    self.done = True
                    return
                self.line = ""
            self.line += text


class AnswerLineStop(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        from vllm.tokenizers import cached_tokenizer_from_config

        tokenizer = cached_tokenizer_from_config(vllm_config.model_config)
        # Each token's text alone: the mark, digits and newlines are ASCII, whole in one token's text.
        self.pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
        self.eos = tokenizer.eos_token_id
        self.lines: dict[int, _Line] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # it ends greedy decoding too

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.lines, batch_update, _opted_in)
        for line in self.lines.values():
            line.advance(self.pieces)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        done = [index for index, line in self.lines.items() if line.done]
        if done:
            rows = torch.tensor(done, device=logits.device)
            eos = logits[rows, self.eos].clone()
            logits[rows] = float("-inf")
            logits[rows, self.eos] = torch.where(torch.isfinite(eos), eos, torch.zeros_like(eos))
        return logits


def _opted_in(params, _prompt_ids, output_ids: list[int]) -> _Line | None:
    line = (params.extra_args or {}).get(LINE_KEY)
    return None if line is None else _Line(output_ids, line)
