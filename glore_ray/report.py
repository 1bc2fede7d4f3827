"""The run report: one Markdown file plus PNG figures, side by side with the paper's numbers.

Reads the artifacts a run wrote (never recomputes), so every number links to the file it came
from. ``python -m glore_ray.report runs/tiny`` rebuilds it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The paper's numbers (Havrilla et al. 2024), columns GSM8K 7B, GSM8K 13B, SVAMP 7B, SVAMP 13B.
PAPER_COLUMNS = ("GSM8K 7B", "GSM8K 13B", "SVAMP 7B", "SVAMP 13B")
PAPER_TABLE1 = {"orm": (0.74, 0.73, 0.77, 0.85), "balanced_orm": (0.73, 0.74, 0.77, 0.83),
                "sorm": (0.79, 0.81, 0.78, 0.87)}
PAPER_TABLE2 = {"orm": (0.82, 0.85, 0.75, 0.82), "balanced_orm": (0.8, 0.82, 0.73, 0.79),
                "sorm": (0.79, 0.8, 0.74, 0.79)}
PAPER_TABLE3 = {"global": (0.203, 0.281, 0.14, 0.255), "local+orm": (0.182, 0.262, 0.09, 0.229),
                "local+sorm": (0.211, 0.283, 0.11, 0.237), "global+local+orm": (0.252, 0.384, 0.173, 0.35),
                "global+local+sorm": (0.280, 0.412, 0.19, 0.37)}
# Table 5 (App. B): maj@1, maj@96, rerank@96, pass@96 of the EI students.
PAPER_TABLE5 = {"GSM8K EI_2 7B": (0.485, 0.55, 0.64, 0.8), "GSM8K EI_2 13B": (0.53, 0.59, 0.71, 0.88),
                "SVAMP EI_5 7B": (0.58, 0.6, 0.62, 0.70), "SVAMP EI_5 13B": (0.69, 0.75, 0.78, 0.93)}
PAPER_LABEL_ACCURACY = 0.94  # App. G: SORM data labels vs 257 hand-labelled steps
# The optional variants' numbers, as the appendices give them (GSM8K, Llama 2 7B students).
PAPER_APP_F_RERANK = {"orm": 0.56, "contrastive_orm": 0.47}  # rerank accuracy, 7B SFT student, K=96
PAPER_APP_I_STEP = {"sorm": 0.75, "sorm_filtered": 0.79}  # SORM test-set accuracy: SORM_1 vs SORM'_1
PAPER_APP_J_FIX = {"value": 0.14, "local+sorm": 0.21}  # fix rate on incorrect drafts, 7B EI student
PAPER_APP_J_GLOBAL_OVER_VALUE = 0.06  # "even global refinement outperforms value-based refinement by 6%"
CORE_RMS = ("orm", "balanced_orm", "sorm")
BASELINE_NAME = "student log-prob (training-free)"
# Right answer, wrong steps (docs/faithful-world.md): ProcessBench's GSM8K split has 7 of its 200
# correct solutions with an erroneous step (Zheng et al. 2024), the real-model level a tiny world
# should not exceed by much; the targets for greedy drafts and for temperature samples.
PROCESSBENCH_GSM8K_WRONG_STEPS = (7, 200)
WRONG_STEPS_TARGET = {"greedy": 0.05, "samples": 0.10}


def write_report(run_dir: str | Path) -> Path:
    run = Path(run_dir)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = _json(run / "evaluate" / "results.json")
    sections = [f"# GLoRe report: `{run}`\n", _timings(run), _pretrain(run), _student(run, results), _labels(run),
                _reward_models(run, results), _faithfulness(results), _refinement(results, out)]
    path = out / "report.md"
    path.write_text("\n".join(s for s in sections if s))
    return path


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else {}


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def _paper(row) -> str:
    return " / ".join(f"{v:.3f}" for v in row)


def _timings(run: Path) -> str:
    lines = ["## Stages\n", "| stage | seconds | counts |", "|---|---|---|"]
    manifests = sorted(run.glob("**/manifest.json"), key=lambda p: _json(p).get("finished", 0))
    for manifest in manifests:
        m = _json(manifest)
        counts = {k: v for k, v in m.get("counts", {}).items() if not isinstance(v, dict)}
        rel = manifest.relative_to(run)
        lines.append(f"| [{m.get('stage')}](../{rel}) | {m.get('seconds')} | {json.dumps(counts)} |")
    return "\n".join(lines) + "\n"


def _pretrain(run: Path) -> str:
    """The pretrained base (stage pretrain), when the run has one in its own directory."""
    manifest, probes = _json(run / "pretrain" / "manifest.json"), _json(run / "pretrain" / "probes.json")
    if not manifest:
        return ""
    counts = manifest.get("counts", {})
    lines = ["## Pretrained base\n",
             "Source: [pretrain/probes.json](../pretrain/probes.json). Trained once with its own seed "
             f"({manifest.get('inputs', {}).get('seed')}; every student seed starts from it) on {counts.get('rows')} "
             f"worked problems, {counts.get('steps')} steps; facts seen often: {counts.get('facts_known')}, "
             f"rarely: {counts.get('facts_rare')}. Greedy accuracy on each kind of step of held-out solutions, "
             "given the solution so far:\n",
             "| step kind | steps | accuracy |", "|---|---|---|"]
    lines += [f"| {kind} | {p['n']} | {_f(p['accuracy'])} |" for kind, p in probes.items()]
    return "\n".join(lines) + "\n"


def _student(run: Path, results: dict) -> str:
    rounds = _json(run / "student" / "rounds.json")
    if not rounds:
        return ""
    keys = [k for k in rounds[0] if k.startswith(("maj@", "pass@"))]
    lines = ["## Student: SFT + Expert Iteration (Table 5)\n",
             "Source: [student/rounds.json](../student/rounds.json). Round 0 is SFT.\n",
             "| round | D_i | " + " | ".join(keys) + " | seconds |", "|---" * (len(keys) + 3) + "|"]
    for r in rounds:
        lines.append(f"| {r['round']} | {r['dataset']} | " + " | ".join(_f(r[k]) for k in keys) + f" | {r['seconds']} |")
    student = results.get("student", {})
    rerank = {k: v for k, v in student.items() if k.startswith("rerank@")}
    if rerank:
        lines.append(f"\nFinal student (round {student.get('final_round')}): "
                     + ", ".join(f"{k} by the ORM = {_f(v)}" for k, v in rerank.items())
                     + " ([evaluate/results.json](../evaluate/results.json)).")
    lines.append("\nPaper (maj@1 / maj@96 / rerank@96 / pass@96): "
                 + "; ".join(f"{name} {_paper(v)}" for name, v in PAPER_TABLE5.items()) + ".\n")
    return "\n".join(lines)


def _labels(run: Path) -> str:
    m = _json(run / "sorm_labels" / "manifest.json").get("counts", {})
    if not m:
        return ""
    stats = m.get("train_stats", {})
    lines = ["## SORM labels\n", "Source: [sorm_labels/manifest.json](../sorm_labels/manifest.json).\n",
             f"- train solutions labelled: {m.get('train_solutions')}; test drafts: {m.get('test_drafts')}",
             f"- verification rollouts: {stats.get('rollouts_requested')}, tokens {stats.get('tokens_generated')}, "
             f"waves {stats.get('waves')}, prefixes de-duplicated {stats.get('prefixes_deduplicated')}",
             f"- labels set by post-processing (1) without rollouts: {stats.get('labels_by_rule1')}; "
             f"rollouts rejected by the consistency check (2): {stats.get('consistency_rejected')}; "
             f"labels masked by balancing (3): {m.get('balanced_masked')}"]
    naive = stats.get("naive_rollouts_equivalent")
    if naive:
        lines.append(f"- the naive procedure would make {naive} rollouts "
                     f"(this run made {stats.get('rollouts_requested') / naive:.1%} of them)")
    for split in ("train", "test"):
        agree = m.get(f"oracle_agreement_{split}")
        if agree:
            lines.append(f"- agreement of the SORM {split} labels with the exact oracle: {_f(agree.get('agreement'))} "
                         f"over {agree.get('n_steps')} steps ({agree.get('false_positives')} false positives, "
                         f"{agree.get('false_negatives')} false negatives; paper App. G: {PAPER_LABEL_ACCURACY} "
                         "on 257 hand-labelled GSM8K steps)")
    return "\n".join(lines + _soft_labels(run)) + "\n"


def _soft_labels(run: Path) -> list[str]:
    """Hard against soft labels on the same solutions (issue 19): what each cost in this run, and
    how well the labels themselves rank steps against the exact oracle."""
    m = _json(run / "sorm_soft_labels" / "manifest.json").get("counts", {})
    if not m:
        return []
    auc = m.get("oracle_auc_train", {})
    lines = ["\nSoft labels (the share of a prefix's K rollouts that succeed; stage sorm_soft_labels) against "
             "the hard labels above, on the same training solutions and the same rollouts (soft > 0 is the hard "
             "label of every step, checked). The SORMs trained on each are `sorm` and `sorm_soft` in the tables "
             "below; soft targets mask the steps balancing masked for the hard SORM.\n",
             "| labels | rollouts | tokens | seconds | label AUC vs exact oracle |", "|---|---|---|---|---|"]
    for name, stats, key in (("hard (labels.scheduler)", m.get("hard_train_stats", {}), "hard"),
                             ("soft (every rollout)", m.get("train_stats", {}), "soft")):
        lines.append(f"| {name} | {stats.get('rollouts_requested')} | {stats.get('tokens_generated')} | "
                     f"{stats.get('seconds', 'n/a')} | {_f(auc.get(key))} |")
    return lines


def _reward_models(run: Path, results: dict) -> str:
    rms = results.get("reward_models", {})
    if not rms:
        return ""
    kinds = [k for k in CORE_RMS if k in rms] + [k for k, v in rms.items() if k not in CORE_RMS and "step" in v]
    exact = any("step_exact" in v for v in rms.values() if isinstance(v, dict))
    head = "| model | step acc (SORM labels) | " + ("step acc (exact) | " if exact else "") + \
        "final acc | FP rate | FN rate | first-error acc | paper step acc | paper final acc |"
    lines = ["## Reward models on the (Q, D) test set (Tables 1-2)\n",
             "Source: [evaluate/results.json](../evaluate/results.json). Paper columns: "
             + " / ".join(PAPER_COLUMNS) + ".\n", head, "|" + "---|" * (head.count("|") - 1)]
    for kind in kinds:
        r = rms[kind]
        cells = [kind, _f(_acc(r, "step"))] + ([_f(_acc(r, "step_exact"))] if exact else [])
        paper = (_paper(PAPER_TABLE1[kind]), _paper(PAPER_TABLE2[kind])) if kind in PAPER_TABLE1 else ("below",) * 2
        cells += [_f(_acc(r, "final")), _f(_acc(r, "step", "fp_rate")), _f(_acc(r, "step", "fn_rate")),
                  _f(r.get("first_error_accuracy")), *paper]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _threshold_free(rms, kinds, results.get("baselines", {}).get("student_logprob"), exact)
    heur = results.get("student", {}).get("rerank_heuristics", {})
    lines += _appendix_rms(run, rms, heur)
    if heur:
        methods = list(next(iter(heur.values())))
        lines += ["\nApp. D rerank heuristics (reranking accuracy over the student's K test samples; "
                  "`final` is Rerank@K):\n",
                  "| model | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(_f(v[m]) for m in methods) + " |" for k, v in heur.items()]
    return "\n".join(lines) + "\n"


def _threshold_free(rms: dict, kinds: list[str], baseline: dict | None, exact: bool) -> list[str]:
    """The same drafts without the 0.5 cut, beside the training-free baseline: final AUC, and
    (tiny world) step AUC against the exact oracle, pooled and within each step position, and
    ProcessBench's first-error F1."""
    head = "| model | final AUC | " + ("step AUC (exact) | step AUC within position | first-error F1 "
                                      "(erroneous / clean) | F1 at calibrated τ (τ) |" if exact else "")
    lines = ["\nThreshold-free (ROC AUC, 0.5 is chance). Pooled step AUC also credits a prior on "
             "position, which the within-position AUC (the mean over step indices, weighted by steps) "
             "cannot. First-error F1 is ProcessBench's: the first step scored <= 0.5 against the oracle's "
             "first invalid step. The calibrated column takes τ maximising F1 on other solutions of the "
             "test questions (evaluate/first_errors/calibration.json; jobs/first_errors.py computes it for any "
             "checkpoint). The baseline is the final student's mean token log-prob, no training: a "
             "reward model under it learned nothing the generator's confidence does not say.\n",
             head, "|" + "---|" * (head.count("|") - 1)]
    rows = [(kind, rms[kind]) for kind in kinds] + ([(BASELINE_NAME, baseline)] if baseline else [])
    for kind, r in rows:
        cells = [kind, _f(r.get("final_auc"))]
        if exact:
            f1 = r.get("first_error_f1_exact")
            cal = r.get("first_error_calibrated")
            cells += [_f(r.get("step_auc_exact")), _f(r.get("step_auc_exact_in_position")),
                      f"{_f(f1['f1'])} ({_f(f1['erroneous'])} / {_f(f1['clean'])})" if f1 else "n/a",
                      f"{_f(cal['f1'])} ({_f(cal['threshold'])})" if cal else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _acc(row: dict, table: str, key: str = "accuracy"):
    """``row[table][key]``, or None where an older run or the baseline has no such table."""
    return (row.get(table) or {}).get(key)


def _appendix_rms(run: Path, rms: dict, heur: dict) -> list[str]:
    """Notes on the optional reward models (App. F, App. I) with the numbers the paper gives."""
    lines = []
    if "contrastive_orm" in rms:
        rerank = {k: heur.get(k, {}).get("final") for k in ("orm", "contrastive_orm")}
        lines.append(
            f"\n- **contrastive_orm (App. F)**: Rerank@K {_f(rerank['contrastive_orm'])} vs the classifier ORM's "
            f"{_f(rerank['orm'])}; paper (GSM8K, 7B SFT student, K=96): {PAPER_APP_F_RERANK['contrastive_orm']} vs "
            f"{PAPER_APP_F_RERANK['orm']}, \"the classifier to be a strictly better reranker\". Its scores are "
            "sigmoid(r) of a reward trained only through differences r_good - r_bad at the final step, so the 0.5 "
            "threshold behind its accuracy and FP/FN rates is not calibrated and its intermediate-step scores were "
            "never trained; reranking (shift-invariant) is the comparison App. F makes.")
    if "sorm_filtered" in rms:
        counts = _json(run / "reward_models" / "sorm_filtered" / "manifest.json").get("counts", {})
        lines.append(
            f"\n- **sorm_filtered (App. I)**: the first SORM kept {counts.get('self_filter_rows_kept')} of "
            f"{counts.get('self_filter_rows_in')} SORM training rows (dropped {counts.get('self_filter_rows_dropped')}, "
            f"{counts.get('self_filter_rows_unlabelled')} of them with no 0/1 label left by balancing; "
            f"{counts.get('self_filter_labels_dropped')} of {counts.get('self_filter_labels_in')} step labels "
            "disagreed and were dropped) "
            "([reward_models/sorm_filtered/manifest.json](../reward_models/sorm_filtered/manifest.json)); "
            f"step accuracy {_f(rms['sorm_filtered']['step']['accuracy'])} vs the SORM's "
            f"{_f(rms.get('sorm', {}).get('step', {}).get('accuracy'))}; paper (GSM8K): SORM'_1 "
            f"{PAPER_APP_I_STEP['sorm_filtered']} vs SORM_1 {PAPER_APP_I_STEP['sorm']} on the SORM test set.")
    return lines


def _faithfulness(results: dict) -> str:
    """Tiny world: how many correct solutions hold a step the exact oracle calls invalid."""
    faith = results.get("faithfulness")
    if not faith:
        return ""
    wrong, total = PROCESSBENCH_GSM8K_WRONG_STEPS
    entries = []
    for r in faith.get("student_rounds") or []:
        who = "SFT student" if r["round"] == 0 else f"EI round {r['round']} student"
        entries += [(f"{who}: greedy test drafts", r.get("test_greedy")),
                    (f"{who}: test samples", r.get("test_samples")),
                    (f"{who}: train samples (drawn for the next round)", r.get("train_samples")),
                    (f"EI round {r['round']}: rows admitted to D_{r['round']}", r.get("admitted"))]
    entries += [("final student: ORM/SORM train samples", faith.get("student_samples")),
                ("final student: greedy test drafts", faith.get("test_drafts"))]
    entries += [(f"refiner: {kind}", v) for kind, v in (faith.get("refiners") or {}).items()]
    entries.append(("SORM verification rollouts (train)", faith.get("sorm_rollouts")))
    lines = ["## Faithfulness: right answer, wrong steps\n",
             "Source: [evaluate/results.json](../evaluate/results.json). Among correct solutions, those with a "
             "step the exact oracle calls invalid: ORM labels call every step of such a solution good, and a "
             "correct SORM verification rollout that holds one vouches for its prefix anyway (paper 3.1). "
             f"Real-model reference: ProcessBench's GSM8K split, {wrong} of {total} correct solutions "
             f"({wrong / total:.1%}); targets: at most {WRONG_STEPS_TARGET['greedy']:.0%} of correct greedy drafts, "
             f"{WRONG_STEPS_TARGET['samples']:.0%} of correct samples.\n",
             "| solutions | correct | with a wrong step | rate |", "|---|---|---|---|"]
    for name, e in entries:
        if e:
            rate, target = e.get("rate"), _wrong_steps_target(name)
            flag = " (above target)" if target is not None and rate is not None and rate > target else ""
            lines.append(f"| {name} | {e.get('correct')} | {e.get('wrong_steps')} | {_f(e.get('rate'))}{flag} |")
    return "\n".join(lines) + "\n"


def _wrong_steps_target(name: str) -> float | None:
    return next((t for kind, t in WRONG_STEPS_TARGET.items() if kind in name), None)


def _refinement(results: dict, out: Path) -> str:
    ref = results.get("refinement")
    if not ref:
        return ""
    lines = ["## Refinement (Table 3, Figures 3-4)\n",
             f"Source: [evaluate/results.json](../evaluate/results.json); {ref['n_incorrect_drafts']} incorrect "
             f"drafts of {results.get('n_test_drafts')}.\n",
             "Table 3, refinement accuracy on incorrect drafts:\n",
             "| method | this run | paper " + " / ".join(PAPER_COLUMNS) + " |", "|---|---|---|"]
    lines += [f"| {k} | {_f(v)} | {_paper(PAPER_TABLE3[k])} |" for k, v in ref["table3"].items()]
    lines += ["\nFigure 3, refinement accuracy:\n", "| refiner | all drafts | incorrect drafts | damage rate |",
              "|---|---|---|---|"]
    lines += [f"| {k} | {_f(v['all_drafts'])} | {_f(v['incorrect_drafts'])} | {_f(v['damage_rate'])} |"
              for k, v in ref["figure3"].items()]
    f4 = ref["figure4"]
    lines += ["\nFigure 4, accuracy on all drafts (policy: the served when/where/how policy with the configured "
              "thresholds, [policy_decisions](../evaluate/policy_decisions/)):\n",
              "| greedy | Bo3 (ORM) | ORM rerank draft+global+local | oracle | policy |",
              "|---|---|---|---|---|", f"| {_f(f4['greedy'])} | {_f(f4.get('bo3'))} | "
              f"{_f(f4['rerank_draft_global_local'])} | {_f(f4['oracle'])} | {_f(f4.get('policy'))} |",
              "\nPaper (GSM8K): reranking draft + refinements improves over the greedy draft by ~8% on average and "
              "over Bo3 by ~8-9%; an oracle reranker by up to 13%.\n"]
    lines += _value_refinement(ref.get("value"))
    c = ref["complementarity"]
    lines.append(f"Complementarity (paper 4.2): global fixed {c.get('only_a', 0) + c.get('both', 0)}, "
                 f"local+SORM fixed {c.get('only_b', 0) + c.get('both', 0)}, both {c.get('both')}, "
                 f"Jaccard {_f(c.get('jaccard'))}.\n")
    lines.append(_plots(ref, out))
    return "\n".join(lines)


def _value_refinement(value: dict | None) -> list[str]:
    """App. J: value refinement next to SORM local refinement and global refinement."""
    if not value:
        return []
    compare = value["compare"]
    return ["App. J, value refinement ([BAD] after the ORM's highest-value step), on incorrect drafts:\n",
            "| method | this run | paper (GSM8K 7B) |", "|---|---|---|",
            f"| value | {_f(value['fix_rate'])} | {PAPER_APP_J_FIX['value']:.3f} |",
            f"| local+sorm | {_f(compare['local+sorm'])} | {PAPER_APP_J_FIX['local+sorm']:.3f} |",
            f"| global | {_f(compare['global'])} | value + {PAPER_APP_J_GLOBAL_OVER_VALUE:.2f} |",
            f"\nValue refinement: {value['refined_drafts']} drafts refined ({value['no_value_step']} had their "
            f"highest value at the last step: left as they are), accuracy on all drafts {_f(value['all_drafts'])}, "
            f"damage rate {_f(value['damage_rate'])}.\n"]


def _plots(ref: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    kinds = list(ref["figure3"])
    xs = range(len(kinds))
    axes[0].bar([x - 0.2 for x in xs], [ref["figure3"][k]["all_drafts"] for k in kinds], 0.4, label="all drafts")
    axes[0].bar([x + 0.2 for x in xs], [ref["figure3"][k]["incorrect_drafts"] for k in kinds], 0.4,
                label="incorrect drafts")
    axes[0].set_xticks(list(xs), kinds)
    axes[0].set_title("Figure 3: refinement accuracy")
    axes[0].legend()
    f4 = ref["figure4"]
    names = ["greedy", "bo3", "rerank_draft_global_local", "oracle"]
    axes[1].bar(["greedy", "Bo3", "ORM rerank", "oracle"], [f4.get(n) or 0 for n in names])
    axes[1].set_title("Figure 4: accuracy on all drafts")
    for ax in axes:
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(out / "figures.png", dpi=110)
    plt.close(fig)
    return "![Figures 3 and 4](figures.png)\n"


if __name__ == "__main__":
    print(write_report(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny"))
