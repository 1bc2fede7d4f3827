"""The paper's claims and the faithful world's targets, read off one finished run (bench/fidelity.py).

A run's numbers live in several artifacts (the student's rounds, the SORM labels' manifest, the
evaluation's results); :func:`run_claims` flattens the ones the claims are about into one ordered
``{name: value}``, and :data:`CHECKS` says which of them must hold. Reading only, never
recomputing: every number is the one the run's report shows. Over seeds, :func:`over_seeds` gives
each claim's mean and sd and each check's verdict per seed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

# The faithful world's targets (docs/faithful-world.md): SFT greedy maj@1 inside the band, pass@K
# at least 0.15 above it, and right answer with wrong steps rare, as in real models.
TARGETS = {"maj1": (0.40, 0.70), "pass_gap": 0.15, "greedy_wrong": 0.05, "samples_wrong": 0.10,
           "label_agreement": 0.85, "rerank_gain": 0.05}


def gains_at_least(new: float, old: float, gain: float) -> bool:
    """``new >= old + gain`` for accuracies, which are fractions of the test set: a gain of exactly
    ``gain`` holds although float subtraction can leave it a hair short (0.835 - 0.685 < 0.15).

    >>> 0.835 >= 0.685 + 0.15, gains_at_least(0.835, 0.685, 0.15), gains_at_least(0.830, 0.685, 0.15)
    (False, True, False)
    """
    return round(new - old - gain, 9) >= 0


def run_claims(run_dir: str | Path) -> dict[str, float | None]:
    """Every claim's number for one finished run; None where the run has no such artifact."""
    run = Path(run_dir)
    rounds = _json(run / "student" / "rounds.json") or []
    results = _json(run / "evaluate" / "results.json") or {}
    claims: dict[str, float | None] = {}
    if rounds:
        k = next(key for key in rounds[0] if key.startswith("pass@"))
        claims |= {"student.sft_maj1": rounds[0]["maj@1"], "student.sft_passk": rounds[0][k],
                   "student.final_maj1": rounds[-1]["maj@1"],
                   "student.ei_change": rounds[-1]["maj@1"] - rounds[0]["maj@1"] if len(rounds) > 1 else None}
    faith = (results.get("faithfulness") or {}).get("student_rounds") or []
    if faith:
        claims |= {"faith.sft_greedy": wrong_rate(faith[0]["test_greedy"]),
                   "faith.sft_samples": wrong_rate(faith[0]["test_samples"])}
    agreement = (_json(run / "sorm_labels" / "manifest.json") or {}).get("counts", {}).get("oracle_agreement_train")
    claims["labels.agreement"] = agreement["agreement"] if agreement else None
    # reward_models also holds the test labels' agreement with the oracle: a row, not a model.
    rms = {kind: r for kind, r in (results.get("reward_models") or {}).items() if "final_auc" in r}
    if "student_logprob" in (results.get("baselines") or {}):
        rms["logprob"] = results["baselines"]["student_logprob"]
    for kind, r in rms.items():
        f1 = r.get("first_error_f1_exact") or {}
        claims |= {f"rm.{kind}.final_auc": r.get("final_auc"), f"rm.{kind}.step_auc": r.get("step_auc_exact"),
                   f"rm.{kind}.step_auc_in_position": r.get("step_auc_exact_in_position"),
                   f"rm.{kind}.first_error_f1": f1.get("f1")}
    refinement = results.get("refinement") or {}
    f4 = refinement.get("figure4") or {}
    claims |= {f"fig4.{name}": f4.get(key) for name, key in
               (("greedy", "greedy"), ("bo3", "bo3"), ("rerank", "rerank_draft_global_local"), ("oracle", "oracle"))}
    claims |= {f"table3.{name}": v for name, v in (refinement.get("table3") or {}).items()}
    for refiner, r in (refinement.get("figure3") or {}).items():
        claims |= {f"refiner.{refiner}.fix": r.get("incorrect_drafts"), f"refiner.{refiner}.damage": r.get("damage_rate")}
    return {name: _number(v) for name, v in claims.items()}


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def wrong_rate(entry: dict) -> float:
    """A wrong-steps share; with no correct solution there is no evidence of faithfulness (1.0)."""
    return entry["rate"] if entry["correct"] else 1.0


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _need(*names: str) -> Callable[[Callable], Callable]:
    """A check that holds only where the run has every number it reads (None: not measured)."""
    def wrap(predicate):
        def check(c: dict) -> bool | None:
            return None if any(c.get(n) is None for n in names) else predicate(*(c[n] for n in names))
        return check
    return wrap


_LO, _HI = TARGETS["maj1"]
# (name, which issue's acceptance it is, predicate over a run's claims: True, False or None).
CHECKS: list[tuple[str, str, Callable[[dict], bool | None]]] = [
    (f"SFT maj@1 in [{_LO}, {_HI}]", "24", _need("student.sft_maj1")(lambda m: _LO <= m <= _HI)),
    (f"pass@K >= maj@1 + {TARGETS['pass_gap']}", "24",
     _need("student.sft_maj1", "student.sft_passk")(lambda m, p: gains_at_least(p, m, TARGETS["pass_gap"]))),
    (f"wrong steps <= {TARGETS['greedy_wrong']:.0%} of correct greedy drafts", "24",
     _need("faith.sft_greedy")(lambda r: r <= TARGETS["greedy_wrong"])),
    (f"wrong steps <= {TARGETS['samples_wrong']:.0%} of correct samples", "24",
     _need("faith.sft_samples")(lambda r: r <= TARGETS["samples_wrong"])),
    ("an EI round does not lower maj@1", "24", _need("student.ei_change")(lambda d: d >= 0)),
    (f"SORM labels agree with the oracle on >= {TARGETS['label_agreement']}", "24",
     _need("labels.agreement")(lambda a: a >= TARGETS["label_agreement"])),
    (f"Fig. 4: ORM rerank >= greedy + {TARGETS['rerank_gain']}", "26",
     _need("fig4.rerank", "fig4.greedy")(lambda r, g: gains_at_least(r, g, TARGETS["rerank_gain"]))),
    ("Fig. 4: ORM rerank > Bo3", "26", _need("fig4.rerank", "fig4.bo3")(lambda r, b: r > b)),
    ("Table 3: global + local + SORM > max(global, local + SORM)", "26",
     _need("table3.global+local+sorm", "table3.global", "table3.local+sorm")(lambda gls, g, ls: gls > max(g, ls))),
    # The paper's scientific claims (Tables 1-2): reported per seed, honest either way.
    ("ORM final AUC > the student's log-prob", "25",
     _need("rm.orm.final_auc", "rm.logprob.final_auc")(lambda orm, lp: orm > lp)),
    ("SORM first-error F1 > ORM's", "25", _need("rm.sorm.first_error_f1", "rm.orm.first_error_f1")(lambda s, o: s > o)),
]


def over_seeds(per_seed: dict[int, dict[str, float | None]]) -> dict:
    """``{"claims": {name: {"seeds": {seed: v}, "mean": m, "sd": s}}, "checks": {name: {"issue": i,
    "seeds": {seed: bool | None}, "holds": bool | None}}}``: a check holds when it holds on every
    seed that measured it (None when none did); sd needs two seeds.

    >>> out = over_seeds({0: {"student.sft_maj1": 0.5}, 1: {"student.sft_maj1": 0.8}})
    >>> out["claims"]["student.sft_maj1"]["mean"], out["checks"]["SFT maj@1 in [0.4, 0.7]"]["holds"]
    (0.65, False)
    """
    names = list(dict.fromkeys(n for claims in per_seed.values() for n in claims))
    table = {}
    for name in names:
        values = {s: c.get(name) for s, c in per_seed.items()}
        known = [v for v in values.values() if v is not None]
        table[name] = {"seeds": values, "mean": statistics.mean(known) if known else None,
                       "sd": statistics.stdev(known) if len(known) > 1 else None}
    checks = {}
    for name, issue, predicate in CHECKS:
        verdicts = {s: predicate(c) for s, c in per_seed.items()}
        measured = [v for v in verdicts.values() if v is not None]
        checks[name] = {"issue": issue, "seeds": verdicts, "holds": all(measured) if measured else None}
    return {"claims": table, "checks": checks}
