zip(r["labels"], r["raw_labels"], strict=True))
    assert on.stats.labels_by_rule1 == changed > 0
    # Without the check, rollouts that skip R_i count: more positives, never fewer.
    assert sum(map(sum, (r["labels"] for r in off.rows))) > sum(map(sum, (r["labels"] for r in on.rows)))


def test_labels_track_exact_truth_in_the_tiny_world():
    problems, samples = make_samples(40, 5)
    by_id = {p.id: p for p in problems}
    result = efficient_labels(samples, FakeVerifier(problems), LabelConfig())
    exact = [exact_step_labels(by_id[r["question_id"]], r["solution"]) for r in result.rows]
    agreement = label_agreement([r["labels"] for r in result.rows], exact)
    assert 0.8 < agreement["agreement"] < 1.0  # noisy like App. G (94%), far from chance


def test_seed_keys_are_stable_and_distinguish_questions_and_prefixes():
    assert prefix_key("q", "1 + 1 = 2\n") == "0256ba5e796f0a53e253"  # stable across runs and machines
    assert prefix_key("q", "1 + 1 = 2\n") != prefix_key("q2", "1 + 1 = 2\n")
    assert prefix_key("q", "1 + 1 = 2\n") != prefix_key("q", "1 + 1 = 3\n")
    assert rollout_seed("k", 1) == rollout_seed("k", 1) != rollout_seed("k", 1, run_seed=1)
    assert 0 <= rollout_seed("k", 7) < 2**63


@pytest.mark.parametrize("field", ["question_id", "prompt", "text", "correct", "answer"])
def test_missing_fields_are_named(field):
    sample = {"question_id": "q", "prompt": "Q: x\nA: ", "text": "#### 1", "correct": True, "answer": "1"}
    del sample[field]
    with pytest.raises(ValueError, match=f"sample 0 .*{field!r}"):
        naive_labels([sample], FakeVerifier([]), LabelConfig())
