"""Everything DeepSpeed, in one module (STYLE: fast-moving APIs wrapped once).

On CPU: gloo, fp32 and a plain ``torch.optim.AdamW`` (DeepSpeed's CPU-Adam needs a ~100 s C++
build, docs/architecture.md §10). On GPU: bf16 and fused AdamW. ZeRO stage, micro batch and accumulation come
from :class:`~glore_ray.config.TrainConfig`.
"""

from __future__ import annotations

import os

import torch

CHECKPOINT_TAG = "state"  # one DeepSpeed tag per Ray checkpoint directory


def prepare_environment(rank: int, world_size: int, local_rank: int, use_gpu: bool) -> None:
    """DeepSpeed reads the rank layout from the environment (without it, it looks for mpi4py and
    fails). Ray Train has already made the torch process group; these only describe it."""
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if use_gpu else "cpu")
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank)})
    os.environ.setdefault("LOCAL_WORLD_SIZE", str(world_size))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")


def ds_config(train_cfg, world_size: int, grad_accum: int, use_gpu: bool) -> dict:
    """The DeepSpeed config dict. The global batch is micro_batch * grad_accum * world_size."""
    config = {
        "train_micro_batch_size_per_gpu": train_cfg.micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": train_cfg.micro_batch * grad_accum * world_size,
        "gradient_clipping": train_cfg.grad_clip,
        "zero_optimization": {"stage": train_cfg.zero_stage,
                              "stage3_gather_16bit_weights_on_model_save": True},
        "zero_allow_untested_optimizer": True,  # a torch optimizer, on purpose (see module doc)
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if use_gpu:
        config["bf16"] = {"enabled": True}
    return config


def init_engine(model: torch.nn.Module, train_cfg, world_size: int, grad_accum: int, lr_lambda,
                use_gpu: bool):
    """``deepspeed.initialize`` with a torch AdamW and a LambdaLR (``lr_lambda(step)`` is the
    factor on lr_max); DeepSpeed steps the scheduler at accumulation boundaries."""
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo", auto_mpi_discovery=False)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if use_gpu and torch.cuda.is_available() else {}
    optimizer = torch.optim.AdamW(params, lr=train_cfg.lr_max, weight_decay=train_cfg.weight_decay,
                                  betas=(0.9, 0.95), **fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config(train_cfg, world_size, grad_accum, use_gpu))
    return engine


def current_lr(engine) -> float:
    return float(engine.get_lr()[0])


def save_state(engine, directory: str) -> None:
    """Optimizer, scheduler and (sharded) weights; every rank writes its own shards (collective)."""
    engine.save_checkpoint(directory, tag=CHECKPOINT_TAG)


def load_state(engine, directory: str) -> None:
    path, _ = engine.load_checkpoint(directory, tag=CHECKPOINT_TAG, load_optimizer_states=True,
                                     load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"no DeepSpeed state under {directory}")


def full_state_dict(engine) -> dict:
    """Full weights for an HF export; under ZeRO-3 every rank must call this (it gathers)."""
    if engine.zero_optimization_stage() == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    return engine.module.state_dict()


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum a few numbers over all workers (loss, token counts, accuracy counts)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
    return t.cpu().tolist()
