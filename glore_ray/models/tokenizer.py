"""The tiny world's tokenizer: byte-level BPE trained on the task's own text.

Digits are split one per token (so arithmetic is learnable digit by digit, docs/architecture.md §8), a newline
is always its own token (reward models read a step's score there, docs/architecture.md §3), and the special
tokens are ``<pad>``, ``<s>``, ``</s>`` and ``[BAD]`` (the local refiner's error marker, paper 3.1
step 3). The result saves and reloads with ``AutoTokenizer.from_pretrained``.

Also the one place where any tokenizer (tiny or real) is loaded and where prompts and solutions
become token ids with the step positions reward models read (training, scoring and the log-prob
baseline all call these, so train and score agree).
"""

from __future__ import annotations

from collections.abc import Iterable

from glore_ray.decide.where import BAD_TOKEN  # one definition: the marker belongs to "where"
from glore_ray.tasks.steps import join_steps, split_steps

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = [PAD, BOS, EOS, BAD_TOKEN]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (round-trips any text exactly)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS)
    tok.add_special_tokens({"additional_special_tokens": [BAD_TOKEN]})
    tok.padding_side = "left"  # generation pads on the left; training collators set their own side
    return tok


def add_bad_token(tokenizer) -> int:
    """Make ``[BAD]`` one special token of a pretrained tokenizer (real scale); returns how many
    tokens were added, so the caller can resize the model's embeddings."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": [BAD_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added


def load_tokenizer(path):
    """The tokenizer at ``path``, with ``[BAD]`` (the local refiner's marker, paper 3.1 step 3)
    as a special token and a pad token set."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if BAD_TOKEN not in tok.get_vocab() or tok.pad_token is None:
        add_bad_token(tok)
    return tok


def step_token_positions(tokenizer, solution: str) -> tuple[list[int], list[int]]:
    """Token ids of ``join_steps(split_steps(solution))`` and, per step, the index of the token
    covering the newline that ends it (offset mapping: robust to merged "\\n" tokens)."""
    text = join_steps(split_steps(solution))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    newline_chars = [i for i, ch in enumerate(text) if ch == "\n"]
    positions, t = [], 0
    for c in newline_chars:
        while t < len(enc["offset_mapping"]) and enc["offset_mapping"][t][1] <= c:
            t += 1
        if t == len(enc["offset_mapping"]):
            raise ValueError(f"no token covers the newline at char {c} of {text!r}")
        positions.append(t)
    return list(enc["input_ids"]), positions


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
