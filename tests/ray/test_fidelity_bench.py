"""bench/fidelity.py on the finished smoke run: it reads every claim off a real run's artifacts,
prints the table, and never reads a seed whose pipeline has not finished."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]


def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", REPO / "bench" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fidelity_reads_a_finished_run_and_skips_an_unfinished_one(smoke_run, tmp_path, capsys):
    cfg, _, _ = smoke_run
    root = tmp_path / "fidelity"
    (root / "smoke").mkdir(parents=True)
    (root / "smoke" / "seed_0").symlink_to(Path(cfg.run.run_dir).resolve())
    (root / "smoke" / "seed_1" / "evaluate").mkdir(parents=True)  # killed mid-evaluation: no manifest
    table = fidelity().main(["--root", str(root), "--name", "smoke", "--no-run"])
    claims = table["claims"]
    assert all(set(row["seeds"]) == {0} for row in claims.values())
    # Every claim is read from the artifacts the smoke run's report shows (its student is too weak
    # for an AUC: every draft is wrong, so those are None, as the report's n/a).
    results = json.loads((Path(cfg.run.run_dir) / "evaluate" / "results.json").read_text())
    assert claims["fig4.greedy"]["mean"] == pytest.approx(results["refinement"]["figure4"]["greedy"])
    assert claims["table3.global"]["mean"] == pytest.approx(results["refinement"]["table3"]["global"])
    rounds = json.loads((Path(cfg.run.run_dir) / "student" / "rounds.json").read_text())
    assert claims["student.sft_maj1"]["mean"] == pytest.approx(rounds[0]["maj@1"])
    for name in ("student.sft_passk", "faith.sft_greedy", "faith.sft_samples", "labels.agreement", "fig4.rerank"):
        assert claims[name]["mean"] is not None, name
    assert {f"rm.{kind}.final_auc" for kind in ("orm", "sorm", "sorm_oracle", "logprob")} <= set(claims)
    assert not any(name.startswith("rm.test_label_agreement") for name in claims)  # a row, not a model
    assert json.loads((root / "smoke" / "fidelity.json").read_text())["seeds"] == [0]
    out = capsys.readouterr().out
    assert "fig4.rerank" in out and "[26] Fig. 4: ORM rerank > Bo3: 0:" in out
