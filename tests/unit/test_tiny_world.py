"""The tiny world's oracle against an independent brute force (docs/architecture.md §8, issue 2)."""

import itertools
import random

import pytest

from glore_ray.tasks import tiny_oracle, tiny_world
from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.steps import split_steps
from glore_ray.tasks.tiny_oracle import exact_step_labels, first_invalid_step, prefix_is_valid
from glore_ray.tasks.tiny_world import COMMUTATIVE, TinyProblem, TinyWorldConfig, generate_problems


def test_graph_and_oracle_names_still_import_from_tiny_world():
    """Tools outside the package (the fidelity check) import the problem and the oracle from
    tiny_world, where they lived before they had modules of their own."""
    from glore_ray.tasks import tiny_graph
    from glore_ray.tasks.tiny_world import TinyProblem as problem
    from glore_ray.tasks.tiny_world import exact_step_labels as labels
    from glore_ray.tasks.tiny_world import first_invalid_step as first

    assert labels is tiny_oracle.exact_step_labels and first is tiny_oracle.first_invalid_step
    assert problem is tiny_graph.TinyProblem and set(tiny_world.__all__) <= set(dir(tiny_world))


def brute_force_valid_lines(problem: TinyProblem) -> set[tuple[str, ...]]:
    """Every valid step sequence: every order of the graph's nodes in which a product sub-step
    comes before the operation that uses it, the story operations applied to the running total
    in that order, every operand order of a commutative operation, kept when every running total
    is non-negative and the last one is the answer (V*: the answer is reached). Shares nothing
    with the oracle but the line format."""
    nodes = problem.nodes
    chain = [i for i, n in enumerate(nodes) if i == len(nodes) - 1 or any(
        m.left.ref == i for m in nodes)]
    start = nodes[chain[0]].left.const
    out = set()
    for order in itertools.permutations(range(len(nodes))):
        position = {n: i for i, n in enumerate(order)}
        if any(nodes[n].right.ref is not None and position[nodes[n].right.ref] > position[n] for n in chain):
            continue
        lines, total = [], start
        for n in order:
            node = nodes[n]
            if n in chain:
                amount = nodes[node.right.ref].value if node.right.ref is not None else node.right.const
                a, b, total = total, amount, eval(f"{total} {node.op} {amount}")
            else:
                a, b = node.left.const, node.right.const
            lines.append((a, node.op, b, eval(f"{a} {node.op} {b}")))
            if total < 0:
                break
        else:
            if total != int(problem.answer):
                continue
            choices = [((a, b), (b, a)) if op in COMMUTATIVE else ((a, b),) for a, op, b, _ in lines]
            for operands in itertools.product(*choices):
                out.add(tuple(f"{x} {op} {y} = {c}" for (x, y), (_, op, _, c) in zip(operands, lines)))
    return out


def brute_force_prefix_valid(problem, steps, valid_sequences) -> bool:
    body = [s for s in steps if not s.startswith("####")]
    n = len(body)
    if steps and steps[-1].startswith("####"):
        if any(s.startswith("####") for s in steps[:-1]):
            return False
        return any(seq[:n] == tuple(body) for seq in valid_sequences) and is_correct(steps[-1], problem.answer)
    if any(s.startswith("####") for s in steps):
        return False
    return any(seq[:n] == tuple(steps) for seq in valid_sequences)


def corrupt(rng: random.Random, problem: TinyProblem) -> list[str]:
    """A solution with a slip: wrong arithmetic, wrong operation, swapped order, dropped or
    repeated step, wrong answer, or garbage, at a random place."""
    steps = split_steps(problem.reference)
    i = rng.randrange(len(steps))
    kind = rng.choice(["arith", "op", "swap", "drop", "repeat", "answer", "garbage", "none"])
    if kind == "arith" and i < len(steps) - 1:
        lhs, rhs = steps[i].rsplit("= ", 1)
        steps[i] = f"{lhs}= {int(rhs) + rng.choice([-10, -1, 1, 2, 10])}"
    elif kind == "op" and i < len(steps) - 1:
        a, op, b, _, c = steps[i].split()
        new = rng.choice([o for o in "+-*" if o != op])
        steps[i] = f"{a} {new} {b} = {eval(f'{a}{new}{b}')}"
    elif kind == "swap" and i < len(steps) - 2:
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    elif kind == "drop" and len(steps) > 2:
        del steps[min(i, len(steps) - 2)]
    elif kind == "repeat" and i < len(steps) - 1:
        steps.insert(i, steps[i])
    elif kind == "answer":
        steps[-1] = f"#### {int(problem.answer) + 1}"
    elif kind == "garbage":
        steps[i] = rng.choice(["3 + = 4", "hello", "12 / 3 = 4", "007 + 1 = 8"])
    return steps


def test_oracle_agrees_with_brute_force_on_1000_problems():
    problems = generate_problems(1000, seed=7, split="train")
    rng = random.Random(0)
    checked = invalid_seen = 0
    for problem in problems:
        valid = brute_force_valid_lines(problem)
        candidates = [split_steps(problem.reference), corrupt(rng, problem), corrupt(rng, problem)]
        for steps in candidates:
            for k in range(1, len(steps) + 1):
                expected = brute_force_prefix_valid(problem, steps[:k], valid)
                assert prefix_is_valid(problem, steps[:k]) == expected, (problem.question, steps[:k])
                checked += 1
                invalid_seen += not expected
    assert checked > 10_000 and invalid_seen > 1_000  # the corruptions really exercise the oracle


def test_reference_solutions_are_valid_and_correct():
    for problem in generate_problems(200, seed=1, split="test"):
        assert first_invalid_step(problem, problem.reference) is None
        assert is_correct(problem.reference, problem.answer)
        assert all(exact_step_labels(problem, problem.reference))


def test_first_invalid_step_and_labels():
    problem = generate_problems(1, seed=3)[0]
    steps = split_steps(problem.reference)
    bad = list(steps)
    lhs, rhs = bad[0].rsplit("= ", 1)
    bad[0] = f"{lhs}= {int(rhs) + 1}"
    assert first_invalid_step(problem, "\n".join(bad)) == 0
    assert exact_step_labels(problem, "\n".join(bad)) == [0] * len(bad)
    assert first_invalid_step(problem, "\n".join(steps[:-1])) is None  # valid but unfinished


def test_generation_is_seeded_and_rows_round_trip():
    a = generate_problems(20, seed=5, split="train")
    assert a == generate_problems(20, seed=5, split="train")
    assert a != generate_problems(20, seed=6, split="train")
    assert {p.question for p in a}.isdisjoint({p.question for p in generate_problems(20, seed=5, split="test")})
    row = a[0].to_row()
    assert set(row) == {"id", "question", "reference", "answer", "split", "meta"}
    assert TinyProblem.from_row(row) == a[0]


def test_difficulty_knobs():
    easy = generate_problems(50, seed=0, config=TinyWorldConfig(min_ops=1, max_ops=1, ops=("+",), p_product=0.0))
    assert all(len(split_steps(p.reference)) == 2 for p in easy)
    with pytest.raises(ValueError, match="min_ops"):
        TinyWorldConfig(min_ops=3, max_ops=2)
    with pytest.raises(ValueError, match="unknown operations"):
        TinyWorldConfig(ops=("+", "^"))


def test_distractors_state_numbers_no_step_may_use():
    """tiny_world.distractors: irrelevant clauses with numbers distinct from every number of the
    graph, never the first clause; the reference stays valid, a step that uses one is invalid,
    and a world without them makes exactly the problems it made before the knob existed."""
    import dataclasses
    import hashlib
    import re

    config = TinyWorldConfig(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 19), add_range=(1, 19),
                             mul_range=(2, 3), max_value=199, p_product=0.5, product_k_range=(3, 9),
                             product_m_range=(11, 49), style="terse", distractors=(1, 2))
    plain = generate_problems(40, seed=5, config=dataclasses.replace(config, distractors=(0, 0)))
    fingerprint = hashlib.sha256("".join(p.question + p.reference for p in plain).encode()).hexdigest()[:16]
    assert fingerprint == "9d367962128a9d1d"  # these 40 problems, made by the code before the knob
    counts = []
    for problem in generate_problems(40, seed=5, config=config):
        clauses = problem.question.split(", ")
        asides = [c for c in clauses if c.startswith("sees ")]
        counts.append(len(asides))
        assert not clauses[0].startswith("sees ")
        graph_numbers = {n.value for n in problem.nodes} | {o.const for n in problem.nodes
                                                            for o in (n.left, n.right) if o.const is not None}
        for aside in asides:
            number = int(re.search(r" with (\d+) ", aside).group(1))
            assert number not in graph_numbers
            first = problem.reference.splitlines()[0].split(" = ")[0].split(" ")[0]
            assert first_invalid_step(problem, f"{first} + {number} = {int(first) + number}") == 0
        assert all(exact_step_labels(problem, problem.reference))
    assert set(counts) == {1, 2}
    with pytest.raises(ValueError, match="distractors"):
        TinyWorldConfig(distractors=(2, 1))
    story = generate_problems(5, seed=0, config=dataclasses.replace(config, style="story"))
    assert all(re.search(r"\. [A-Z][a-z]+ has \d+ \w+\. ", p.question) for p in story)


def test_slipped_continuation_carries_the_written_slip_to_the_answer():
    """The student's copy-from-the-scratchpad rows (docs/faithful-world.md): the prompt's prefix is the
    reference with one result written wrong, and the target recomputes every later step from
    the written (wrong) number, so the target's answer differs from the question's."""
    from glore_ray.tasks.slipped import slipped_continuation
    from glore_ray.tasks.tiny_world import parse_step

    config = TinyWorldConfig(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 9), add_range=(1, 9),
                             mul_range=(2, 3), max_value=99, p_product=0.0, style="terse")
    rng, made = random.Random(0), 0
    for problem in generate_problems(60, seed=3, split="train", config=config):
        out = slipped_continuation(problem, rng, config.max_value)
        if out is None:
            continue
        made += 1
        prefix, rest = split_steps(out[0]), split_steps(out[1])
        # The prefix is valid up to its last step, which the oracle calls invalid (the slip).
        assert first_invalid_step(problem, out[0]) == len(prefix) - 1
        steps = [parse_step(s) for s in prefix + rest[:-1]]
        for (a, op, b, c), nxt in zip(steps, steps[1:]):
            assert {"+": a + b, "-": a - b, "*": a * b}[op] == c or (a, op, b, c) == steps[len(prefix) - 1]
            assert c in (nxt[0], nxt[2])  # every later step reads the written result
        assert all(0 <= s[3] <= config.max_value for s in steps)
        assert not is_correct(out[1], problem.answer)
    assert made >= 40


def chain_problem(start: int, *ops: tuple[str, int]) -> TinyProblem:
    """A hand-made chain: ``start`` then each (op, amount) applied to the running total."""
    from glore_ray.tasks.tiny_world import OPS, Node, Operand

    nodes, left, total = [], Operand(const=start), start
    for op, amount in ops:
        total = OPS[op](total, amount)
        nodes.append(Node(op, left, Operand(const=amount), total))
        left = Operand(ref=len(nodes) - 1)
    return TinyProblem("hand-made", "?", tuple(nodes), "")


def test_oracle_accepts_any_order_of_the_remaining_operations_that_reaches_the_answer():
    doubles_then_triples = chain_problem(7, ("*", 2), ("*", 3))
    assert exact_step_labels(doubles_then_triples, "7 * 3 = 21\n21 * 2 = 42\n#### 42") == [1, 1, 1]
    assert exact_step_labels(doubles_then_triples, "3 * 7 = 21\n2 * 21 = 42\n#### 42") == [1, 1, 1]
    assert exact_step_labels(doubles_then_triples, "7 * 3 = 21\n21 * 3 = 63\n#### 63") == [1, 0, 0]  # used twice
    run = chain_problem(10, ("+", 5), ("-", 3), ("+", 4))  # = 16
    assert exact_step_labels(run, "10 - 3 = 7\n7 + 4 = 11\n11 + 5 = 16\n#### 16") == [1, 1, 1, 1]
    assert exact_step_labels(run, "10 - 3 = 7\n7 + 4 = 11\n#### 16") == [1, 1, 1]  # valid, just short
    assert exact_step_labels(run, "10 - 5 = 5\n5 + 3 = 8") == [0, 0]  # an operation the story lacks


def test_oracle_rejects_an_order_that_no_longer_reaches_the_answer():
    plus_then_double = chain_problem(6, ("+", 5), ("*", 2))  # (6 + 5) * 2 = 22
    assert exact_step_labels(plus_then_double, "6 * 2 = 12\n12 + 5 = 17\n#### 17") == [0, 0, 0]
    assert exact_step_labels(plus_then_double, "6 + 5 = 11\n2 * 11 = 22\n#### 22") == [1, 1, 1]
    mixed = chain_problem(4, ("*", 3), ("+", 2), ("*", 2))  # ((4 * 3) + 2) * 2 = 28
    assert exact_step_labels(mixed, "4 * 2 = 8\n8 * 3 = 24\n24 + 2 = 26") == [0, 0, 0]
    assert exact_step_labels(mixed, "4 * 3 = 12\n12 + 2 = 14\n14 * 2 = 28\n#### 28") == [1, 1, 1, 1]
    # 4 - 5 would go negative on the way: an order through a total no line can state is invalid.
    dips = chain_problem(4, ("+", 6), ("-", 5))
    assert exact_step_labels(dips, "4 + 6 = 10\n10 - 5 = 5") == [1, 1]
    assert exact_step_labels(dips, "4 - 5 = -1") == [0]


def test_oracle_accepts_reordered_operations_of_a_world_with_products():
    config = TinyWorldConfig(min_ops=3, max_ops=4, p_product=0.5, mul_range=(2, 3))
    reordered = 0
    for problem in generate_problems(300, seed=11, split="train", config=config):
        valid = brute_force_valid_lines(problem)
        reference = tuple(split_steps(problem.reference)[:-1])
        for lines in valid:
            assert first_invalid_step(problem, "\n".join(lines) + f"\n#### {problem.answer}") is None
            reordered += lines != reference
    assert reordered > 500


def test_long_chains_are_built_without_rejection_and_keep_every_number_distinct():
    import time

    config = TinyWorldConfig(ops=("+", "-", "*"), min_ops=7, max_ops=9, start_range=(2, 9), add_range=(1, 9),
                             mul_range=(2, 3), max_value=99, p_product=0.0, style="terse")
    start = time.perf_counter()
    problems = generate_problems(1000, seed=0, split="train", config=config)
    assert time.perf_counter() - start < 10  # the rejection sampler took 13 s for 200 of these
    for p in problems:
        numbers = [o.const for n in p.nodes for o in (n.left, n.right) if o.ref is None] + [n.value for n in p.nodes]
        assert len(numbers) == len(set(numbers)) and all(0 <= n.value <= 99 for n in p.nodes)
        assert 7 <= len(p.nodes) <= 9 and first_invalid_step(p, p.reference) is None
    with_products = generate_problems(300, seed=1, config=TinyWorldConfig(min_ops=4, max_ops=6, p_product=0.5))
    assert all(first_invalid_step(p, p.reference) is None for p in with_products)
    assert sum(any(n.left.ref is None and n.right.ref is None and n is not p.nodes[0] for n in p.nodes)
               for p in with_products) > 50  # "k packs of m" sub-steps appear


def test_product_sub_steps_are_exactly_the_pairs_that_keep_every_number_distinct():
    """_products spells _fits out for speed: the same pairs in the same order, so every world draws
    the problems it drew before (the 999-world and a knowledge world, over random states)."""
    rng = random.Random(0)
    worlds = [TinyWorldConfig(ops=("+", "-", "*"), start_range=(2, 19), add_range=(1, 19), max_value=999,
                              p_product=1.0, product_k_range=(3, 9), product_m_range=(11, 99), style="terse"),
              TinyWorldConfig(ops=("+", "-", "*"), max_value=199, p_product=0.5, containers=8, product_m_range=(11, 49),
                              style="terse")]
    for config, _ in itertools.product(worlds, range(300)):
        total = rng.randint(0, config.max_value)
        used = {total, *rng.sample(range(1, config.max_value + 1), rng.randint(0, 40))}
        item, op = rng.choice(tiny_world.world_items(config)), rng.choice("+-")
        k_lo, k_hi = config.product_k_range or config.mul_range
        sizes = (sorted(s for (i, _), s in tiny_world.fact_table(config).items() if i == item) if config.containers
                 else range(config.product_m_range[0], config.product_m_range[1] + 1))
        expected = [(k, m) for k in range(k_lo, k_hi + 1) for m in sizes
                    if tiny_world._fits(tiny_world.OPS[op](total, k * m), (k, m, k * m), used, config)]
        assert tiny_world._products(op, total, used, config, item) == expected


def test_a_world_that_cannot_be_filled_is_refused_at_once_naming_the_knobs():
    from glore_ray.config import DataConfig
    from glore_ray.tasks import DataError, load_questions

    cramped = TinyWorldConfig(min_ops=1, max_ops=1, ops=("+",), start_range=(5, 6), add_range=(2, 3), max_value=6,
                              p_product=0.0)
    with pytest.raises(ValueError, match=r"made no new problem after 0 of 10.*widen tiny_world.start_range"):
        generate_problems(10, seed=0, config=cramped)
    small = TinyWorldConfig(min_ops=1, max_ops=1, ops=("+",), start_range=(5, 6), add_range=(2, 3), p_product=0.0,
                            style="terse")  # 2 starts x 2 amounts x 14 names x 10 items = 560 questions
    assert len(generate_problems(560, seed=0, config=small)) == 560
    with pytest.raises(DataError, match=r"data.tiny_world: .* after 560 of 561.*n_train, n_test"):
        load_questions(DataConfig(task="tiny", n_train=561, tiny_world=small), "train")


def test_factors_up_to_9_have_words_and_the_default_world_keeps_2_to_4():
    wide = TinyWorldConfig(ops=("+", "*"), min_ops=3, max_ops=3, start_range=(2, 9), add_range=(1, 9),
                           mul_range=(2, 9), max_value=999, p_product=0.0, style="terse")
    problems = generate_problems(400, seed=2, config=wide)
    factors = {n.right.const for p in problems for n in p.nodes if n.op == "*"}
    assert factors == set(range(2, 10))
    assert any("gets 7 times as many" in p.question for p in problems)
    default = set()
    for p in generate_problems(300, seed=2):
        sub_steps = {n.right.ref for n in p.nodes}  # "k packs of m": another node's right operand
        default |= {n.right.const for i, n in enumerate(p.nodes) if n.op == "*" and i not in sub_steps}
    assert default == {2, 3, 4}


def test_product_ranges_make_two_digit_packs_and_leave_the_default_world_alone():
    hard = TinyWorldConfig(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 19), add_range=(1, 19),
                           mul_range=(2, 3), max_value=999, p_product=0.15, product_k_range=(11, 29),
                           product_m_range=(11, 29), style="terse")
    problems = generate_problems(300, seed=0, config=hard)
    sub_steps = [n for p in problems for i, n in enumerate(p.nodes) if i in {m.right.ref for m in p.nodes}]
    assert sub_steps and all(11 <= n.left.const <= 29 and 11 <= n.right.const <= 29 for n in sub_steps)
    assert all(first_invalid_step(p, p.reference) is None for p in problems)
    # None keeps the old draw: k from mul_range, m from about half of add_range (same problems).
    explicit = TinyWorldConfig(product_k_range=(2, 4), product_m_range=(2, 21))
    assert generate_problems(50, seed=3, config=explicit) == generate_problems(50, seed=3)
    with pytest.raises(ValueError, match="product_k_range"):
        TinyWorldConfig(product_k_range=(5, 2))


def test_max_products_caps_the_product_sub_steps_of_a_problem():
    def n_products(p):
        return sum(1 for i, n in enumerate(p.nodes) if i in {m.right.ref for m in p.nodes})

    world = dict(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 19), add_range=(1, 19), mul_range=(2, 3),
                 max_value=499, p_product=0.4, product_k_range=(3, 9), product_m_range=(11, 49), style="terse")
    free = generate_problems(300, seed=0, config=TinyWorldConfig(**world))
    capped = generate_problems(300, seed=0, config=TinyWorldConfig(**world, max_products=1))
    assert max(map(n_products, free)) >= 2 and max(map(n_products, capped)) == 1
    assert sum(n_products(p) == 1 for p in capped) > 100
    assert all(first_invalid_step(p, p.reference) is None for p in capped)
    assert generate_problems(50, seed=3, config=TinyWorldConfig(max_products=None)) == generate_problems(50, seed=3)


def test_slipped_corpus_gives_the_base_prompt_side_slips_drawn_apart_from_its_other_rows():
    """pretrain.slipped_share's rows: the student prompt and a reference up to one slipped step, the
    target following from the written number; a pure function of (world, rows, seed), drawn from a
    split of its own so the base's other rows do not move."""
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.slipped import slipped_corpus

    config = TinyWorldConfig(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 9), add_range=(1, 9),
                             mul_range=(2, 3), max_value=99, p_product=0.0, style="terse")
    rows = slipped_corpus(config, 30, seed=4)
    assert rows == slipped_corpus(config, 30, seed=4) and rows != slipped_corpus(config, 30, seed=5)
    by_prompt = {student_prompt(p.question): p for p in generate_problems(200, seed=4, split="pretrain-slipped",
                                                                          config=config)}
    for prompt, target in rows:
        head, _, written = prompt.partition("A: ")
        problem = by_prompt[head + "A: "]
        assert first_invalid_step(problem, written) == len(split_steps(written)) - 1  # the slip ends the prompt
        assert not is_correct(target, problem.answer)
    with pytest.raises(ValueError, match="slipped rows"):
        slipped_corpus(TinyWorldConfig(ops=("+", "-"), min_ops=1, max_ops=1, start_range=(2, 9), add_range=(1, 9),
                                       p_product=0.0, max_value=99), 5, seed=0)  # one step: nothing reads a slip


def test_slipped_corpus_never_adds_a_sighting_of_a_rare_fact():
    from glore_ray.tasks.arithmetic import problem_fact_keys, split_facts
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.slipped import slipped_corpus

    world = TinyWorldConfig(ops=("+", "-", "*"), min_ops=5, max_ops=7, start_range=(2, 19), add_range=(1, 19),
                            mul_range=(2, 3), max_value=199, p_product=0.5, product_k_range=(3, 9),
                            product_m_range=(11, 49))
    _, rare = split_facts(world, 0.5, seed=1)
    problems = {student_prompt(p.question): p for p in generate_problems(400, seed=1, split="pretrain-slipped",
                                                                         config=world)}
    used = [problem_fact_keys(problems[prompt.partition("A: ")[0] + "A: "], world)
            for prompt, _ in slipped_corpus(world, 40, seed=1)]
    assert any(set(facts) & set(rare) for facts in used)  # without the filter some rows use one
    kept = [problem_fact_keys(problems[prompt.partition("A: ")[0] + "A: "], world)
            for prompt, _ in slipped_corpus(world, 40, seed=1, rare_facts=frozenset(rare))]
    assert len(kept) == 40 and not any(set(facts) & set(rare) for facts in kept)
