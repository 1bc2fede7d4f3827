"""Stage ``evaluate``: the paper's results on the (Q, D) test set (paper 3.2, 4, App. B, D, G).

- Table 5 (App. B): the student's maj@1, maj@K, pass@K per EI round, and Rerank@K by the ORM.
- Tables 1-2 (4.1): step and final-answer accuracy of ORM, balanced ORM and SORM against the
  SORM-procedure test labels (and, in the tiny world, the exact oracle labels); FP/FN rates;
  accuracy of the located first error; App. D rerank heuristics over K student samples. The
  extra reward models of ``pipeline.extra_reward_models`` that have been trained (App. F
  contrastive ORM, App. I self-filtered SORM) get the same rows, and Rerank@K (App. F's metric).
- Threshold-free: the ROC AUC of every reward model's final-step score against final correctness
  and (tiny world) of all its step scores against the exact labels; the same for a training-free
  baseline, the final student's own mean token log-prob (docs/faithful-world.md).
- Faithfulness (tiny world, docs/faithful-world.md): how many correct solutions hold a wrong step, among the
  student's samples, the test drafts, each refiner's solutions and the SORM verification rollouts.
- Figure 3, Table 3, Figure 4 (4.2): refinement accuracies, the complementarity of global and
  local refinement, and ORM reranking of draft + refinements against greedy and Bo3.
- App. J, with ``refine.value_refinement``: the value refiner at the ORM's highest-value step.

Generation goes through the Ray Data sampler and scoring through Ray tasks; everything else is
the pure policy (:mod:`glore_ray.decide`) and metrics (:mod:`glore_ray.metrics`).
"""

from __future__ import annotations

from pathlib import Path

from glore_ray.artifacts import Stage, StageError, require_done
from glore_ray.config import Config
from glore_ray.decide import how, where
from glore_ray.metrics import (
    auc,
    final_answer_accuracy,
    first_error_accuracy,
    first_error_f1,
    refinement_report,
    rerank_at_k,
    rerank_by_heuristic,
    step_accuracy,
    step_auc,
    step_auc_within_position,
)
from glore_ray.stages.common import by_question, sample_table, student_checkpoint
from glore_ray.stages.data import questions, tiny_problems
from glore_ray.stages.first_errors import calibrated_first_errors
from glore_ray.stages.labels import orm_table, sorm_table
from glore_ray.stages.models import model_checkpoint
from glore_ray.stages.student import final_round, round_table, rounds_table
from glore_ray.tasks.grading import is_correct
from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.steps import split_steps

NAME = "evaluate"
RMS = ("orm", "balanced_orm", "sorm")


def run_evaluate(cfg: Config, force: bool = False) -> dict:
    stage = Stage(cfg.run.run_dir, NAME, cfg.digest("refine", "pipeline.extra_reward_models", "run.seed"), force)
    if stage.done:
        return stage.manifest
    run = Path(cfg.run.run_dir)
    for needed in ("student", "orm_data", "sorm_labels", "refine_data"):
        require_done(run, needed)
    test = {q["id"]: q for q in questions(cfg, "test")}
    drafts = sorted(orm_table(run, "test_drafts"), key=lambda r: r["question_id"])
    labels = {r["question_id"]: r for r in sorm_table(run, "labels_test")}
    drafts = [d for d in drafts if d["question_id"] in labels]  # drafts with at least one step
    rms = {k: model_checkpoint(cfg.run.run_dir, f"reward_models/{k}") for k in RMS}
    extras, not_trained = extra_reward_models(cfg)
    rms |= extras
    scorer = _scorer(cfg)

    draft_scores = {k: scorer(path, [labels[d["question_id"]]["prompt"] for d in drafts],
                              [labels[d["question_id"]]["solution"] for d in drafts]) for k, path in rms.items()}
    results = {"n_test_drafts": len(drafts),
               "draft_accuracy": _mean([d["correct"] for d in drafts]),
               "reward_models": reward_model_tables(cfg, drafts, labels, draft_scores, test),
               "student": student_table(cfg, run, {k: rms[k] for k in ("orm", "sorm", *extras)}, scorer, test),
               "refinement": refinement_tables(cfg, stage, drafts, labels, draft_scores, test, rms["orm"], scorer),
               "baselines": baselines(cfg, drafts, labels, test, _scorer(cfg, logprob=True))}
    if cfg.data.task == "tiny":
        calibrated = calibrated_first_errors(stage, run, drafts, labels, test, rms, draft_scores, scorer)
        for kind, summary in calibrated.items():
            results["reward_models"][kind]["first_error_calibrated"] = summary
    faithful = faithfulness(cfg, run, drafts, stage.read_table("refinements"))
    if faithful is not None:
        results["faithfulness"] = faithful
    if not_trained:
        results["reward_models_not_trained"] = not_trained
    results["refinement"]["figure4"]["bo3"] = results["student"]["bo3"]
    stage.write_json("results.json", results)
    from glore_ray.report import write_report

    report = write_report(cfg.run.run_dir)
    return stage.finish({"test_drafts": len(drafts)}, extra={"report": str(report)})


def extra_reward_models(cfg: Config) -> tuple[dict[str, str], list[str]]:
    """({kind: checkpoint} of the configured extra reward models that have finished, [the
    configured ones that have not]): a standalone evaluate job scores what is there."""
    found, missing = {}, []
    for kind in cfg.pipeline.extra_reward_models:
        try:
            found[kind] = model_checkpoint(cfg.run.run_dir, f"reward_models/{kind}")
        except StageError:
            missing.append(kind)
    return found, missing


def _scorer(cfg: Config, logprob: bool = False):
    """``score(model_path, prompts, solutions) -> per-step scores`` over Ray tasks: a reward model's
    probabilities, or with ``logprob`` a causal LM's mean token log-probs."""
    from glore_ray.rollout.scoring import score_steps, step_logprobs

    fan_out = step_logprobs if logprob else score_steps

    def score(path, prompts, solutions):
        return fan_out(path, prompts, solutions, chunks=cfg.rollout.num_actors,
                       num_cpus=cfg.rollout.cpus_per_actor, num_gpus=cfg.rollout.gpus_per_actor)

    return score


def reward_model_tables(cfg, drafts, labels, draft_scores, test) -> dict:
    """Tables 1-2, FP/FN at 0.5, the located first error, their threshold-free AUCs, and (tiny
    world) exact-label accuracy."""
    sorm_labels = [labels[d["question_id"]]["labels"] for d in drafts]
    correct = [bool(d["correct"]) for d in drafts]
    exact = _exact_labels(cfg, drafts, labels, test)
    out = {}
    for kind, scores in draft_scores.items():
        located = [where.first_bad_step(s, 0.5) for s in scores]
        row = {"step": step_accuracy(scores, sorm_labels), "final": final_answer_accuracy(scores, correct),
               "first_error_accuracy": first_error_accuracy(located, sorm_labels),
               **threshold_free(scores, correct, exact)}
        if exact is not None:
            row["step_exact"] = step_accuracy(scores, exact)
            row["first_error_accuracy_exact"] = first_error_accuracy(located, exact)
        out[kind] = row
    if exact is not None:
        from glore_ray.metrics import label_agreement

        out["test_label_agreement_with_oracle"] = label_agreement(sorm_labels, exact)
    return out


def threshold_free(step_scores: list[list[float]], correct: list[bool], exact: list[list[int]] | None,
                   probabilities: bool = True) -> dict:
    """``final_auc``: the last step's score against final correctness (Table 2 without its 0.5
    cut). Where exact labels exist: ``step_auc_exact`` over every step, pooled and
    ``_in_position`` (a position prior earns nothing there), and, for ``probabilities`` (not
    log-probs, which have no 0.5), ProcessBench's first-error F1 against the oracle's first
    invalid step."""
    row = {"final_auc": auc([s[-1] for s in step_scores], correct)}
    if exact is not None:
        row["step_auc_exact"] = step_auc(step_scores, exact)
        row["step_auc_exact_in_position"] = step_auc_within_position(step_scores, exact)
        if probabilities:
            row["first_error_f1_exact"] = first_error_f1(step_scores, exact)
    return row


def baselines(cfg, drafts, labels, test, logprob_scorer) -> dict:
    """The training-free baseline (docs/faithful-world.md): each test draft's steps scored by the final
    student's own mean token log-prob. A reward model whose AUC is no better learned nothing the
    generator's confidence did not already say."""
    scores = logprob_scorer(student_checkpoint(cfg), [labels[d["question_id"]]["prompt"] for d in drafts],
                            [labels[d["question_id"]]["solution"] for d in drafts])
    correct = [bool(d["correct"]) for d in drafts]
    return {"student_logprob": threshold_free(scores, correct, _exact_labels(cfg, drafts, labels, test),
                                              probabilities=False)}


def faithfulness(cfg, run: Path, drafts: list[dict], refinements: list[dict]) -> dict | None:
    """Tiny world only (the exact oracle): among correct solutions, how many hold a wrong step
    (docs/faithful-world.md). SORM verification rollouts matter most: a correct one marks its prefix good."""
    if cfg.data.task != "tiny":
        return None
    from glore_ray.tasks.faithfulness import wrong_steps_rate

    problems = tiny_problems(cfg, "train", "test")
    by_kind: dict[str, list[dict]] = {}
    for row in refinements:  # no correct column: graded against the test answer
        by_kind.setdefault(row["kind"], []).append(row)
    # A verifying rollout continues a prefix of a student sample; its solution is prefix + text.
    rollouts = ({"question_id": r["question_id"], "solution": r["prefix"] + r["text"], "correct": r["correct"]}
                for r in sorm_table(run, "rollouts_train"))
    return {"student_samples": wrong_steps_rate(problems, orm_table(run, "samples"), "text"),
            # ``drafts`` keeps the drafts with a step: every correct one of orm_data/test_drafts.
            "test_drafts": wrong_steps_rate(problems, drafts, "text"),
            "student_rounds": student_faithfulness(run, problems),
            "refiners": {kind: wrong_steps_rate(problems, rows, "solution") for kind, rows in by_kind.items()},
            "sorm_rollouts": wrong_steps_rate(problems, rollouts, "solution")}


def student_faithfulness(run: Path, problems: dict) -> list[dict]:
    """Per student round (0 is SFT): the right-answer-wrong-steps share of its greedy test drafts,
    its temperature samples on the test and (where a later round drew them) on the train
    questions, and for an EI round the rows it admitted to D_i (correct by construction, so a
    wrong step among them is an unfaithful row the next student learns from)."""
    from glore_ray.tasks.faithfulness import wrong_steps_rate

    out, previous = [], None
    for r in (h["round"] for h in rounds_table(run)):
        row = {"round": r,
               "test_greedy": wrong_steps_rate(problems, round_table(run, r, "eval_greedy"), "text"),
               "test_samples": wrong_steps_rate(problems, round_table(run, r, "eval_samples"), "text")}
        if (rollouts := round_table(run, r + 1, "rollouts")) is not None:
            row["train_samples"] = wrong_steps_rate(problems, rollouts, "text")
        dataset = round_table(run, r, "dataset")
        if previous is not None:  # D_r extends D_{r-1} by position (labeling/expert_iteration.py)
            row["admitted"] = wrong_steps_rate(problems, dataset[previous:], "target")
        out.append(row)
        previous = len(dataset)
    return out


def _exact_labels(cfg, drafts, labels, test):
    if cfg.data.task != "tiny":
        return None
    from glore_ray.tasks.tiny_oracle import exact_step_labels
    from glore_ray.tasks.tiny_world import TinyProblem

    return [exact_step_labels(TinyProblem.from_row(test[d["question_id"]]), labels[d["question_id"]]["solution"])
            for d in drafts]


def student_table(cfg, run: Path, rms: dict[str, str], scorer, test) -> dict:
    """Table 5 rows per EI round, the final student's Rerank@K by the ORM, and App. D's heuristics
    for every reward model in ``rms`` (heuristic ``final`` is Rerank@K: App. F compares the
    contrastive ORM's rerank accuracy with the ORM's)."""
    rounds, final = rounds_table(run), final_round(run)
    samples = by_question(round_table(run, final, "eval_samples"))
    qids = [q for q in sorted(test) if q in samples]
    per_q = [sorted(samples[q], key=lambda s: s["sample_index"]) for q in qids]
    prompts = [student_prompt(test[q]["question"]) for q, ss in zip(qids, per_q) for _ in ss]
    texts = [s["text"] for ss in per_q for s in ss]
    flat = {kind: _regroup(scorer(path, prompts, _nonempty(texts)), per_q) for kind, path in rms.items()}
    correct = [[bool(s["correct"]) for s in ss] for ss in per_q]
    k = cfg.student.eval_k
    return {"rounds": rounds, "final_round": final,
            f"rerank@{k}": rerank_at_k([[s[-1] for s in q] for q in flat["orm"]], correct, k),
            "rerank_heuristics": {kind: rerank_by_heuristic(flat[kind], correct) for kind in flat},
            # Figure 4's Bo3 baseline: the ORM's pick among the first 3 student samples.
            "bo3": rerank_at_k([[s[-1] for s in q] for q in flat["orm"]], correct, min(3, k))}


def _nonempty(texts):
    # A sample without any step still gets one (empty) step so the RM returns a score for it.
    return [t if split_steps(t) else "(no answer)\n" for t in texts]


def _regroup(flat_scores, per_q):
    out, i = [], 0
    for ss in per_q:
        out.append(flat_scores[i:i + len(ss)])
        i += len(ss)
    return out


def refinement_tables(cfg, stage, drafts, labels, draft_scores, test, orm, scorer) -> dict:
    """Figure 3, Table 3, Figure 4 and the complementarity of global and local refinement; with
    ``refine.value_refinement`` also App. J's value refinement. Where, rerank and the policy go
    through :mod:`glore_ray.decide`, the functions the HTTP service calls."""
    from glore_ray.rollout.engine import RolloutRequest

    T = cfg.refine.where_threshold
    value_on = cfg.refine.value_refinement
    plans = {"global": {}, "local_sorm": {}, "local_orm": {}, **({"value": {}} if value_on else {})}
    for d, s_sorm, s_orm in zip(drafts, draft_scores["sorm"], draft_scores["orm"]):
        qid, question, draft = d["question_id"], test[d["question_id"]]["question"], labels[d["question_id"]]["solution"]
        plans["global"][qid] = (how.global_prompt(question, draft), None)
        for kind, scores in (("local_sorm", s_sorm), ("local_orm", s_orm)):
            bad = where.first_bad_step(scores, T)
            if bad is not None:
                plans[kind][qid] = (how.local_prompt(question, draft, bad), bad)
        # App. J: "label the highest value step S_i of each draft using the ORM, placing the [BAD]
        # token as a prefix to S_{i+1}"; a draft whose best step is its last gets no refinement.
        bad = where.value_bad_step(s_orm) if value_on else None
        if bad is not None:
            plans["value"][qid] = (how.local_prompt(question, draft, bad), bad)
    checkpoints = {kind: model_checkpoint(cfg.run.run_dir, f"refiners/{kind}")
                   for kind in ("global", "local", *(("value",) if value_on else ()))}
    solutions = {}
    for kind, plan in plans.items():
        requests = [RolloutRequest(qid, prompt, answer=test[qid]["answer"], greedy=True)
                    for qid, (prompt, _) in sorted(plan.items())]
        rows = {r["question_id"]: r for r in sample_table(cfg, stage, f"refine_{kind}",
                                                          checkpoints[kind.split("_")[0]], requests,
                                                          cfg.refine.max_new_tokens)}
        solutions[kind] = {}
        for d in drafts:
            qid, draft = d["question_id"], labels[d["question_id"]]["solution"]
            if qid not in plan:  # no step under the threshold: no local refinement, the draft stands
                solutions[kind][qid] = draft
            else:
                out = rows[qid]["text"]
                solutions[kind][qid] = out if kind == "global" else how.local_solution(draft, plan[qid][1], out)
    stage.write_table("refinements", [{"question_id": q, "kind": k, "solution": s}
                                      for k, by_q in solutions.items() for q, s in by_q.items()])
    metrics = refinement_metrics(cfg, stage, drafts, labels, draft_scores, solutions, plans, test, orm, scorer)
    if value_on:
        metrics["value"] = value_refinement_summary(metrics, plans["value"], drafts)
    return metrics


def value_refinement_summary(metrics: dict, plan: dict, drafts: list[dict]) -> dict:
    """App. J's numbers next to the refiners it is compared with (paper: value refinement fixes
    14% of incorrect drafts, SORM local refinement 21%, global refinement 6 points more than value)."""
    value = metrics["figure3"]["value"]
    incorrect = {d["question_id"] for d in drafts if not d["correct"]}
    return {"fix_rate": value["incorrect_drafts"], "all_drafts": value["all_drafts"],
            "damage_rate": value["damage_rate"],
            "refined_drafts": len(plan), "refined_incorrect_drafts": len(incorrect & set(plan)),
            "no_value_step": len(drafts) - len(plan),  # the ORM valued the whole draft most
            "compare": {"local+sorm": metrics["table3"]["local+sorm"], "global": metrics["table3"]["global"]}}


def refinement_metrics(cfg, stage, drafts, labels, draft_scores, solutions, plans, test, orm, scorer) -> dict:
    """Correctness of every refinement, the ORM's pick among draft + global + local+SORM (Fig. 4),
    and the served policy's decision per draft (written to ``policy_decisions``), then the pure
    table math (:func:`glore_ray.metrics.refinement_report`)."""
    ids = [d["question_id"] for d in drafts]
    draft_ok = [bool(d["correct"]) for d in drafts]
    ok = {k: [is_correct(solutions[k][q], test[q]["answer"]) for q in ids] for k in solutions}
    prompts = [labels[q]["prompt"] for q in ids]
    orm_steps = {k: dict(zip(ids, scorer(orm, prompts, _nonempty([solutions[k][q] for q in ids])), strict=True))
                 for k in solutions}
    reranked, decisions = [], []
    # The policy's local refinement is located by the SORM, or by the ORM in the 4.2 ablation.
    where_kind = "orm" if cfg.refine.use_orm_for_where else "sorm"
    solution_kind = {"global": "global", "local": f"local_{where_kind}"}
    for i, d in enumerate(drafts):
        qid, draft, s_orm = d["question_id"], labels[d["question_id"]]["solution"], draft_scores["orm"][i]
        # Fig. 4: every draft refined both ways, the ORM reranks (the local candidate only where
        # the SORM found a bad step: otherwise it is the draft itself).
        candidates = [how.make_candidate("draft", draft, s_orm),
                      how.make_candidate("global", solutions["global"][qid], orm_steps["global"][qid])]
        if qid in plans["local_sorm"]:
            candidates.append(how.make_candidate("local", solutions["local_sorm"][qid], orm_steps["local_sorm"][qid]))
        reranked.append(is_correct(how.rerank(candidates).text, test[qid]["answer"]))
        # The policy as served: when (ORM gate), where, how.
        plan = how.refine_plan(test[qid]["question"], draft, s_orm, draft_scores[where_kind][i],
                               cfg.refine.when_threshold, cfg.refine.where_threshold)
        decision = how.decide(plan, {k: solutions[solution_kind[k]][qid] for k in plan.prompts},
                              {k: orm_steps[solution_kind[k]][qid] for k in plan.prompts})
        decisions.append({"question_id": qid, "refined": decision.refined, "bad_step": decision.bad_step,
                          "chosen": decision.chosen.kind, "answer": decision.answer,
                          "correct": is_correct(decision.chosen.text, test[qid]["answer"])})
    stage.write_table("policy_decisions", decisions)
    return refinement_report(ids, draft_ok, ok, reranked, [r["correct"] for r in decisions])


def _mean(values) -> float:
    values = list(values)
    return sum(bool(v) for v in values) / len(values) if values else float("nan")
