"""The tiny world's tokenizer: byte-level BPE trained on the task's own text.

Digits are split one per token (so arithmetic is learnable digit by digit, DESIGN §8), a newline
is always its own token (reward models read a step's score there, DESIGN §3), and the special
tokens are ``<pad>``, ``<s>``, ``</s>`` and ``[BAD]`` (the local refiner's error marker, paper 3.1
step 3). The result saves and reloads with ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

BAD_TOKEN = "[BAD]"
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


def save_tokenizer(tokenizer, path: str | Path) -> None:
    tokenizer.save_pretrained(str(path))
