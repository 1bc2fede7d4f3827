"""The pretraining corpus (glore_ray/tasks/arithmetic.py): every line true, inside the world, and the
fact split honoured: known facts often, rare ones exactly rare_sightings times."""

import pytest

from glore_ray.config import ConfigError, load_config
from glore_ray.tasks.arithmetic import fact_sightings, pretrain_corpus, product_facts, product_steps, split_facts
from glore_ray.tasks.tiny_world import TinyWorldConfig, generate_problems, parse_step

WORLD = TinyWorldConfig(ops=("+", "-", "*"), start_range=(2, 19), add_range=(1, 19), mul_range=(2, 3), max_value=199,
                        p_product=0.5, product_k_range=(3, 9), product_m_range=(11, 49), min_ops=5, max_ops=7)


def test_every_line_is_a_true_step_of_the_world():
    corpus = pretrain_corpus(WORLD, rows=300, lines_per_row=12, known_share=0.5, rare_sightings=2, seed=3)
    lines = [line for text in corpus for line in text.split("\n")]
    assert len(corpus) == 300 and len(lines) == 3600
    for line in lines:
        parsed = parse_step(line)  # the solution's own step form
        assert parsed is not None, line
        a, op, b, c = parsed
        assert {"+": a + b, "-": a - b, "*": a * b}[op] == c, line
        assert 0 <= c <= WORLD.max_value, line
    assert {parse_step(line)[1] for line in lines} == {"+", "-", "*"}


def test_products_the_world_writes_are_the_fact_table():
    """Every "k packs of m" step in the world's references is a fact of product_facts, so the
    split covers what the student meets."""
    facts = set(product_facts(WORLD))
    seen = set()
    for problem in generate_problems(300, seed=0, config=WORLD):
        amounts = {node.right.ref for node in problem.nodes}  # a product sub-step is a later step's amount
        seen |= {(n.left.const, n.right.const) for i, n in enumerate(problem.nodes) if i in amounts}
    assert seen and seen <= facts


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_known_facts_are_seen_often_and_rare_ones_exactly_rare_sightings_times(share):
    known, rare = split_facts(WORLD, share, seed=1)
    assert not set(known) & set(rare) and sorted(known + rare) == product_facts(WORLD)
    assert len(known) == round(share * len(product_facts(WORLD)))
    sightings = fact_sightings(pretrain_corpus(WORLD, rows=2000, lines_per_row=12, known_share=share,
                                               rare_sightings=2, seed=1))
    assert all(sightings[f] == 2 for f in rare)
    assert all(sightings[f] >= 10 for f in known)


def test_the_corpus_and_the_split_are_pure_functions_of_the_base_seed():
    make = lambda seed: pretrain_corpus(WORLD, rows=50, lines_per_row=8, known_share=0.5, rare_sightings=1, seed=seed)  # noqa: E731
    assert make(0) == make(0) and make(0) != make(1)
    assert split_facts(WORLD, 0.5, 0) == split_facts(WORLD, 0.5, 0) != split_facts(WORLD, 0.5, 1)


def test_a_world_without_products_pretrains_on_its_own_kinds_only():
    plus_only = TinyWorldConfig(ops=("+",), max_value=30, start_range=(5, 10), add_range=(2, 9))
    lines = [line for text in pretrain_corpus(plus_only, 20, 5, 0.5, 2, 0) for line in text.split("\n")]
    assert {parse_step(line)[1] for line in lines} == {"+"}
    with pytest.raises(ValueError, match="rows and lines_per_row"):
        pretrain_corpus(plus_only, 0, 5, 0.5, 2, 0)


def test_pretrain_config_is_checked_and_left_out_of_other_worlds():
    with pytest.raises(ConfigError, match="known_share"):
        load_config(None, ["pretrain.known_share=1.5"])
    with pytest.raises(ConfigError, match="needs data.task=tiny and model.base=tiny"):
        load_config(None, ["pretrain.enabled=true", "data.task=gsm8k"])


def test_the_student_digest_sees_the_base_only_when_it_is_pretrained():
    """A run without pretraining keeps its digest (old run directories stay valid); with it, the
    base's settings are part of the student, and run.seed is not part of the base."""
    from glore_ray.stages.pretrain import DIGEST as BASE
    from glore_ray.stages.student import digest_sections

    plain = load_config("configs/tiny.yaml")
    assert plain.digest(*digest_sections(plain)) == load_config("configs/tiny.yaml", ["pretrain.rows=10"]).digest(
        *digest_sections(plain))
    on = load_config("configs/tiny.yaml", ["pretrain.enabled=true"])
    assert on.digest(*digest_sections(on)) != on.digest(*digest_sections(plain))
    other_seed = load_config("configs/tiny.yaml", ["pretrain.enabled=true", "run.seed=5", "pretrain.shared_dir=/x"])
    assert other_seed.digest(*BASE) == on.digest(*BASE)


@pytest.mark.parametrize("with_question", [False, True])
def test_solution_corpus_is_the_worlds_solutions_with_rare_facts_capped(with_question):
    from glore_ray.tasks.arithmetic import solution_corpus
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.tiny_world import iter_problems

    corpus = solution_corpus(WORLD, rows=400, known_share=0.5, rare_sightings=1, seed=2, with_question=with_question)
    drawn = {p.reference: p for _, p in zip(range(4000), iter_problems(2, "pretrain", WORLD))}
    assert len(corpus) == 400 and {target for _, target in corpus} <= set(drawn)
    assert all(prompt == (student_prompt(drawn[target].question) if with_question else "") for prompt, target in corpus)
    known, rare = split_facts(WORLD, 0.5, seed=2)
    sightings = fact_sightings([target for _, target in corpus])
    assert all(sightings[f] <= 1 for f in rare) and sum(sightings[f] for f in rare) > 0
    assert sum(sightings[f] for f in known) > 100
    with pytest.raises(ValueError, match="keep to the known facts"):
        solution_corpus(TinyWorldConfig(**{**WORLD.__dict__, "p_product": 1.0}), rows=300, known_share=0.0,
                        rare_sightings=0, seed=2, with_question=False)


def test_iter_problems_continues_generate_problems():
    from glore_ray.tasks.tiny_world import iter_problems

    first = generate_problems(30, seed=4, config=WORLD)
    assert [p.reference for _, p in zip(range(30), iter_problems(4, "train", WORLD))] == [p.reference for p in first]


KNOWLEDGE = TinyWorldConfig(**{**WORLD.__dict__, "containers": 8, "max_products": 2})


def test_a_knowledge_world_never_states_a_containers_size():
    """containers > 0: "gets 4 crates", and the crate's size is a fact of the world (fixed by
    fact_seed, not by the run), distinct within an item; the reference still multiplies by it."""
    import re

    from glore_ray.tasks.tiny_oracle import first_invalid_step
    from glore_ray.tasks.tiny_world import fact_table, problem_facts, problem_item

    table = fact_table(KNOWLEDGE)
    assert len(table) == 20 * 8 and table == fact_table(TinyWorldConfig(**{**KNOWLEDGE.__dict__, "fact_seed": 0}))
    assert table != fact_table(TinyWorldConfig(**{**KNOWLEDGE.__dict__, "fact_seed": 1}))
    for item in {i for i, _ in table}:
        sizes = [s for (i, _), s in table.items() if i == item]
        assert len(set(sizes)) == len(sizes) and all(11 <= s <= 49 for s in sizes)
    used = 0
    for problem in generate_problems(200, seed=5, config=KNOWLEDGE):
        stated = {int(n) for n in re.findall(r"\d+", problem.question)}
        facts = problem_facts(problem, KNOWLEDGE)
        for (item, container), m in zip(facts, [m for _, m in product_steps(problem)], strict=True):
            assert item == problem_item(problem.question) and table[(item, container)] == m
            assert m not in stated and f"{container} of {item}" in problem.question  # the key, in one place
        used += len(facts)
        assert first_invalid_step(problem, problem.reference) is None
    assert used > 100


def test_knowledge_world_facts_split_and_probe_by_container():
    from glore_ray.tasks.arithmetic import solution_corpus, step_probes, world_facts
    from glore_ray.tasks.prompts import student_prompt
    from glore_ray.tasks.tiny_world import fact_table

    assert world_facts(KNOWLEDGE) == sorted(fact_table(KNOWLEDGE))
    known, rare = split_facts(KNOWLEDGE, 0.25, seed=0)
    assert len(known) == 40 and len(rare) == 120
    corpus = solution_corpus(KNOWLEDGE, rows=200, known_share=0.25, rare_sightings=1, seed=0, with_question=True)
    drawn = {p.reference: p for p in generate_problems(4000, seed=0, split="pretrain", config=KNOWLEDGE)}
    assert all(prompt == student_prompt(drawn[target].question) for prompt, target in corpus)
    problem = next(p for p in generate_problems(50, seed=1, config=KNOWLEDGE) if product_steps(p))
    probes = step_probes(problem, KNOWLEDGE, set(rare), with_question=True)
    kinds = [kind for kind, _, _ in probes]
    assert sum(kind.endswith("fact") for kind in kinds) == len(product_steps(problem))
    for kind, prompt, result in probes:
        assert problem.question in prompt
        line = prompt.removeprefix(student_prompt(problem.question)).split("\n")[-1] + " " + result  # completed
        assert line in problem.reference.split("\n")
        assert prompt.endswith(" *" if kind.endswith("fact") else " =")  # a size is asked, not given
    with pytest.raises(ValueError, match="cannot teach a knowledge world"):
        pretrain_corpus(KNOWLEDGE, 10, 4, 0.5, 1, 0)
    with pytest.raises(ValueError, match="tiny_world.containers must be"):
        TinyWorldConfig(**{**KNOWLEDGE.__dict__, "containers": 17})
