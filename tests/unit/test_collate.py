"""Tokenisation, validation, truncation, bucketing and collation (glore_ray/training/data.py)."""

from __future__ import annotations

import pytest
import torch

from glore_ray.models.tokenizer import step_token_positions
from glore_ray.tasks.steps import split_steps
from glore_ray.training.data import (
    IGNORE_INDEX,
    collate,
    encode_rows,
    micro_batch_order,
    micro_batch_stream,
    padding_fraction,
    validate_rows,
)

PROMPT = "Q: what is 2 + 3 then times 4?\nA: "
SOLUTION = "2 + 3 = 5\n5 * 4 = 20\n#### 20"


def test_step_positions_point_at_each_lines_newline(tiny_tokenizer):
    ids, positions = step_token_positions(tiny_tokenizer, SOLUTION)
    assert len(positions) == len(split_steps(SOLUTION)) == 3
    assert [tiny_tokenizer.decode([ids[p]]) for p in positions] == ["\n"] * 3


def test_step_positions_survive_newline_merged_into_a_token():
    """A real BPE may merge "\\n" with what follows ("\\n#"): the position is the merged token."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.train_from_iterator(["5\n#### 5\n"] * 50 + ["1 + 4 = 5\n"] * 50,
                             trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"], show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    text = "1 + 4 = 5\n#### 5\n"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert any(e - s > 1 and "\n" in text[s:e] for s, e in enc["offset_mapping"]), "want a merged newline token"
    ids, positions = step_token_positions(tok, "1 + 4 = 5\n#### 5")
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    for pos, char in zip(positions, newlines, strict=True):
        start, end = enc["offset_mapping"][pos]
        assert start <= char < end


def test_lm_rows_mask_the_prompt_and_end_in_eos(tiny_tokenizer):
    (ex,), cut = encode_rows([{"prompt": PROMPT, "target": SOLUTION}], "lm", tiny_tokenizer, 256)
    n_prompt = len(tiny_tokenizer(PROMPT)["input_ids"])
    assert cut == 0 and ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:] and ex.input_ids[-1] == tiny_tokenizer.eos_token_id


def test_packed_lm_rows_train_every_segments_target_and_mask_every_prompt(tiny_tokenizer):
    """A row with ``then`` segments (pretrain.problems_per_row) is the first row's encoding, then each
    segment's prompt (masked, no BOS) and target (trained, ending in EOS)."""
    second = {"prompt": "Q: and 1 + 1?\nA: ", "target": "1 + 1 = 2\n#### 2"}
    (single,), _ = encode_rows([{"prompt": PROMPT, "target": SOLUTION}], "lm", tiny_tokenizer, 256)
    (packed,), cut = encode_rows([{"prompt": PROMPT, "target": SOLUTION, "then": [second]}], "lm", tiny_tokenizer, 256)
    n = len(single.input_ids)
    assert cut == 0 and packed.input_ids[:n] == single.input_ids and packed.labels[:n] == single.labels
    p2 = tiny_tokenizer(second["prompt"], add_special_tokens=False)["input_ids"]
    t2 = tiny_tokenizer(second["target"], add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert packed.input_ids[n:] == p2 + t2 and packed.labels[n:] == [IGNORE_INDEX] * len(p2) + t2
    with pytest.raises(ValueError, match="'then' must be a list of"):
        encode_rows([{"prompt": PROMPT, "target": SOLUTION, "then": [{"prompt": "x"}]}], "lm", tiny_tokenizer, 256)


def test_step_rows_carry_one_label_per_step(tiny_tokenizer):
    (ex,), _ = encode_rows([{"prompt": PROMPT, "solution": SOLUTION, "labels": [1, -1, 0]}], "step_bce",
                           tiny_tokenizer, 256)
    assert ex.step_labels == [1, -1, 0]
    assert all(tiny_tokenizer.decode([ex.input_ids[p]]) == "\n" for p in ex.positions)


def test_soft_step_labels_reach_the_batch_as_float_targets(tiny_tokenizer):
    (ex,), _ = encode_rows([{"prompt": PROMPT, "solution": SOLUTION, "labels": [0.375, -1, 0.0]}], "step_bce",
                           tiny_tokenizer, 256)
    batch = collate([ex], "step_bce", pad_id=0)
    assert batch["step_labels"].dtype == torch.float32
    assert batch["step_labels"].tolist() == [[0.375, -1.0, 0.0]]


@pytest.mark.parametrize("row, message", [
    ({"prompt": PROMPT, "solution": SOLUTION}, "missing 'labels'"),
    ({"prompt": PROMPT, "solution": SOLUTION, "labels": [1, 0]}, "2 labels but the solution has 3 steps"),
    ({"prompt": PROMPT, "solution": SOLUTION, "labels": [1, 0, 2]}, "labels must be 0, 1, a soft target in"),
    ({"prompt": PROMPT, "solution": SOLUTION, "labels": [1, -0.5, 0]}, r"or -1 \(ignore\), got \[-0.5\]"),
    ({"prompt": PROMPT, "solution": "\n\n", "labels": []}, "no steps"),
])
def test_bad_step_rows_are_named(row, message):
    with pytest.raises(ValueError, match=message) as err:
        validate_rows([{"prompt": "p", "solution": "1\n#### 1", "labels": [1, 1]}, row], "step_bce")
    assert "rows[1]" in str(err.value)


def test_empty_dataset_and_unknown_objective_are_errors():
    with pytest.raises(ValueError, match="empty dataset"):
        validate_rows([], "lm")
    with pytest.raises(ValueError, match="unknown objective"):
        validate_rows([{"prompt": "p", "target": "t"}], "dpo")


def test_long_rows_are_truncated_and_counted(tiny_tokenizer):
    long_solution = "\n".join(f"{i} + 1 = {i + 1}" for i in range(40)) + "\n#### 41"
    lm, cut_lm = encode_rows([{"prompt": PROMPT, "target": long_solution}], "lm", tiny_tokenizer, 64)
    steps, cut_steps = encode_rows([{"prompt": PROMPT, "solution": long_solution, "labels": [1] * 41}],
                                   "step_bce", tiny_tokenizer, 64)
    pairs, cut_pairs = encode_rows([{"prompt": PROMPT, "chosen": long_solution, "rejected": SOLUTION}],
                                   "pairwise", tiny_tokenizer, 64)
    assert (cut_lm, cut_steps, cut_pairs) == (1, 1, 1)
    assert len(lm[0].input_ids) == 64 and len(steps[0].input_ids) == 64
    assert 0 < len(steps[0].positions) < 41 and max(steps[0].positions) < 64
    assert pairs == []  # the reward is read at the last step, which truncation removed


def test_buckets_cover_every_row_once_and_cut_padding():
    lengths = [5 + (i * 37) % 200 for i in range(256)]
    for bucket in (False, True):
        batches = micro_batch_order(lengths, 8, seed=3, bucket=bucket)
        assert sorted(i for b in batches for i in b) == list(range(256))
    plain = padding_fraction(lengths, micro_batch_order(lengths, 8, seed=3, bucket=False))
    bucketed = padding_fraction(lengths, micro_batch_order(lengths, 8, seed=3, bucket=True))
    assert bucketed < plain / 3
    stream = micro_batch_stream(lengths, 8, 70, seed=0, bucket=True)
    assert len(stream) == 70 and stream == micro_batch_stream(lengths, 8, 70, seed=0, bucket=True)


def test_collate_right_pads_with_the_right_values(tiny_tokenizer):
    rows = [{"prompt": PROMPT, "solution": SOLUTION, "labels": [1, 1, 1]},
            {"prompt": "Q: 1?\nA: ", "solution": "#### 1", "labels": [0]}]
    examples, _ = encode_rows(rows, "step_bce", tiny_tokenizer, 256)
    batch = collate(examples, "step_bce", pad_id=tiny_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["step_labels"].tolist()[1] == [0, -1, -1]
    assert int(batch["attention_mask"][1].sum()) == len(examples[1].input_ids)
    pair = collate(encode_rows([{"prompt": PROMPT, "chosen": SOLUTION, "rejected": "#### 7"}], "pairwise",
                               tiny_tokenizer, 256)[0], "pairwise", pad_id=0)
    assert pair["input_ids"].shape[0] == 2 and pair["positions"].shape == (2, 1)
    assert pair["positions"].dtype == torch.long
