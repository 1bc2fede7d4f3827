"""Steps, intermediate results and the consistency constraint (docs/architecture.md §3, paper 3.1)."""

from glore_ray.tasks.steps import (
    is_consistent,
    join_steps,
    mentions_number,
    split_steps,
    step_result,
    unused_results,
)

GSM = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"


def test_split_and_join_steps():
    assert split_steps(GSM)[-1] == "#### 72"
    assert len(split_steps("a\n\n  \nb\n")) == 2
    joined = join_steps(split_steps(GSM))
    assert joined.count("\n") == 3 and joined.endswith("#### 72\n") and split_steps(joined) == split_steps(GSM)


def test_step_result_priority():
    assert step_result(split_steps(GSM)[0]) == "24"  # the annotation wins
    assert step_result("He has 3 + 4 = 7 apples and 2 pears") == "7"  # number after the last '='
    assert step_result("He buys 3 apples and 12 pears") == "12"  # else the last number
    assert step_result("No numbers here") is None
    assert step_result("Total: 1,200 = <<1200=1200>>1,200 dollars") == "1200"


def test_mentions_number_is_token_wise():
    assert mentions_number("so 12 apples", "12")
    assert not mentions_number("so 12 apples", "2")  # '2' is not a string-match inside '12'
    assert mentions_number("total 6.0 now", "6")
    assert mentions_number("total 1,000 now", "1000")


def test_consistency_constraint():
    step = "2 + 3 = 5"
    assert is_consistent("5 * 4 = 20\n#### 20\n", step)
    assert not is_consistent("6 * 4 = 24\n#### 24\n", step)
    assert is_consistent("anything", "#### 7")  # never applies to the answer line
    assert is_consistent("anything", "Let us think")  # a step without a number
    # Strict variant: an earlier result not yet used must also appear in the suffix.
    assert not is_consistent("5 * 4 = 20\n#### 20\n", step, earlier_unused=["9"])
    assert is_consistent("5 + 9 = 14\n#### 14\n", step, earlier_unused=["9"])


def test_unused_results():
    steps = ["2 + 3 = 5", "4 * 2 = 8", "5 + 1 = 6"]
    assert unused_results(steps) == ["8"]
