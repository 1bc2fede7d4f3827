"""The training loop each Ray Train worker runs (docs/architecture.md §6): one loop for every objective.

The worker reads its shard of the Ray Data rows, tokenises it (``data.py``), builds a seeded,
length-bucketed stream of micro-batches, and trains a DeepSpeed engine (``deepspeed_setup.py``)
for ``total_steps`` optimizer steps. Checkpoints (HF weights for export + DeepSpeed state for
resume) go through ``ray.train.report``; a restarted worker group resumes from the latest one.
Everything arrives through ``config`` (never driver globals).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from glore_ray.config import TrainConfig
from glore_ray.training import deepspeed_setup as ds
from glore_ray.training import ray_api
from glore_ray.training.data import collate, count_tokens, encode_rows, micro_batch_stream
from glore_ray.training.losses import cosine_lr, masked_lm_loss, pairwise_loss, step_bce_loss

HF_DIR, STATE_FILE, DS_DIR = "hf", "trainer_state.json", "ds"


def load_model(init_path: str, reward_head: bool, seed: int):
    """(model to train, tokenizer): a token classifier for reward models, else a causal LM."""
    from glore_ray.models.loading import load_causal_lm
    from glore_ray.models.reward import RewardModel, is_reward_checkpoint
    from glore_ray.models.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    if not reward_head:
        tok = load_tokenizer(init_path)
        return load_causal_lm(init_path, tokenizer=tok), tok
    if is_reward_checkpoint(init_path):
        rm = RewardModel.from_pretrained(init_path)
        rm.model.train()
    else:
        rm = RewardModel.from_causal_lm(init_path, seed=seed)
    return rm.model, rm.tokenizer


def objective_loss(model, batch: dict, objective: str):
    """(loss, correct, counted) for one collated micro-batch."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if objective == "lm":
        return masked_lm_loss(out.logits, batch["labels"]), 0, 0
    scores = out.logits.squeeze(-1)  # [B, T]: the scalar head's logit at every token
    if objective == "step_bce":
        return step_bce_loss(scores, batch["positions"], batch["step_labels"])
    return pairwise_loss(scores, batch["positions"])


@torch.no_grad()
def evaluate(model, examples, objective: str, pad_id: int, micro_batch: int, device) -> dict:
    """Held-out loss and, for reward models, step (or pair) accuracy."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    loss_sum, correct, counted = 0.0, 0, 0
    for s in range(0, len(examples), micro_batch):
        batch = _to(collate(examples[s:s + micro_batch], objective, pad_id), device)
        loss, c, n = objective_loss(model, batch, objective)
        loss_sum, correct, counted = loss_sum + float(loss) * len(batch["input_ids"]), correct + c, counted + n
    model.train(was_training)
    result = {"eval_loss": loss_sum / len(examples)}
    if objective != "lm":
        result["eval_accuracy"] = correct / max(1, counted)
    return result


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


class MetricsLog:
    """metrics.jsonl (+ TensorBoard events when ``tensorboard`` is importable), rank 0 only."""

    def __init__(self, out_dir: str, resume_step: int):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step and self.path.exists():  # drop lines a killed attempt wrote past the checkpoint
            kept = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
        self.path.write_text("".join(ln + "\n" for ln in kept))
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        except ImportError:
            pass

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])


def _restore(engine, fallback_dir: str | None) -> dict:
    checkpoint = ray_api.latest_checkpoint(fallback_dir)
    if checkpoint is None:
        return {"step": 0}
    with checkpoint.as_directory() as d:
        state = json.loads((Path(d) / STATE_FILE).read_text())
        if not state.get("finished"):
            ds.load_state(engine, str(Path(d) / DS_DIR))
    return state


def _save(engine, tokenizer, state: dict, metrics: dict, final: bool) -> None:
    """Report a checkpoint: rank 0 writes HF weights + state; every rank its DeepSpeed shards
    (skipped for the final one, which only needs the export)."""
    tmp = tempfile.mkdtemp(prefix="glore_ckpt_")
    weights = ds.full_state_dict(engine)  # collective under ZeRO-3
    if not final:
        ds.save_state(engine, os.path.join(tmp, DS_DIR))
    if ray_api.rank() == 0:
        engine.module.save_pretrained(os.path.join(tmp, HF_DIR), state_dict=weights)
        tokenizer.save_pretrained(os.path.join(tmp, HF_DIR))
        Path(tmp, STATE_FILE).write_text(json.dumps(state))
    ray_api.report(metrics, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def train_loop(config: dict) -> None:
    """Ray Train entry point (``train_loop_per_worker``)."""
    cfg = TrainConfig(**config["train_cfg"])
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    rank, world = ray_api.rank(), ray_api.world_size()
    ds.prepare_environment(rank, world, ray_api.local_rank(), cfg.use_gpu)
    device = torch.device(f"cuda:{ray_api.local_rank()}" if cfg.use_gpu else "cpu")
    objective, steps, accum = config["objective"], config["total_steps"], config["grad_accum"]

    model, tok = load_model(config["init_path"], config["reward_head"], config["seed"])
    max_len = min(cfg.max_len, getattr(model.config, "max_position_embeddings", cfg.max_len))
    examples, truncated = encode_rows(ray_api.shard_rows("train"), objective, tok, max_len)
    if not examples:
        raise ValueError(f"worker {rank}: no trainable rows in its shard (all dropped as too long?)")
    lengths = [e.length for e in examples]
    batches = micro_batch_stream(lengths, cfg.micro_batch, steps * accum, config["seed"] + 7919 * rank, cfg.packing)
    eval_examples = encode_rows(config["eval_rows"], objective, tok, max_len)[0] if config["eval_rows"] else []

    lr_lambda = lambda step: cosine_lr(step, steps, cfg.lr_max, cfg.lr_min, cfg.warmup_frac) / cfg.lr_max
    engine = ds.init_engine(model, cfg, world, accum, lr_lambda, cfg.use_gpu)
    state = _restore(engine, config.get("resume_from"))
    log = MetricsLog(config["out_dir"], state["step"]) if rank == 0 else None
    totals = state.get("totals", {"tokens": 0.0, "padded": 0.0, "seconds": 0.0})
    resumed = state.get("resumed", 0) + int(state["step"] > 0 and not state.get("finished"))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    truncated = int(ds.all_reduce_sum([truncated])[0])

    for step in range(state["step"], steps):
        if config.get("fail_at_step") == step and rank == 0 and not os.path.exists(config["fail_marker"]):
            Path(config["fail_marker"]).write_text("killed once\n")
            os._exit(1)  # simulate a killed worker (tests only)
        lr = ds.current_lr(engine)  # what the scheduler set for this step (logged, not recomputed)
        start, sums = time.perf_counter(), [0.0, 0.0, 0.0, 0.0, 0.0]  # loss, tokens, padded, correct, counted
        for idx in batches[step * accum:(step + 1) * accum]:
            batch = _to(collate([examples[i] for i in idx], objective, pad_id), device)
            loss, correct, counted = objective_loss(engine, batch, objective)
            engine.backward(loss)
            engine.step()
            sums = [a + b for a, b in zip(sums, [float(loss.detach()), count_tokens(batch), batch["input_ids"].numel(),
                                                 correct, counted])]
        loss_sum, tokens, padded, correct, counted = ds.all_reduce_sum(sums)
        seconds = time.perf_counter() - start
        totals = {"tokens": totals["tokens"] + tokens, "padded": totals["padded"] + padded,
                  "seconds": totals["seconds"] + seconds}
        record = {"step": step + 1, "loss": loss_sum / (accum * world),
                  "lr": lr,
                  "tokens_per_s": tokens / seconds, "padding_fraction": 1 - tokens / padded}
        if counted:
            record["train_accuracy"] = correct / counted
        last = step + 1 == steps
        due = cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0
        if due or last:  # every rank evaluates the same rows: ZeRO-3 forwards are collective
            record.update(evaluate(engine.module, eval_examples, objective, pad_id, cfg.micro_batch, device))
        if log is not None:
            log.write(record)
        if due or last:
            summary = {"final_loss": record["loss"], "tokens_per_s": totals["tokens"] / totals["seconds"],
                       "padding_fraction": 1 - totals["tokens"] / totals["padded"], "truncated": truncated,
                       "resumed": resumed, "eval": {k: v for k, v in record.items() if k.startswith("eval_")}}
            new_state = {"step": step + 1, "finished": last, "totals": totals, "resumed": resumed,
                         "summary": summary}
            _save(engine, tok, new_state, {**record, **{k: v for k, v in summary.items() if k != "eval"}}, last)
    if state.get("finished"):
        ray_api.report({"step": state["step"], **state["summary"]["eval"]}, None)  # restored a finished run
