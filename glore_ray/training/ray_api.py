"""Everything Ray Train, in one module (STYLE: fast-moving APIs wrapped once; Ray Train 2.60, V2).

Worker side: rank, shard rows, latest checkpoint, report. Driver side: :func:`run_trainer`.
A run's state lives under ``storage_path/name``; running again with the same pair restores the
latest reported checkpoint (Ray Train V2 restores its checkpoint manager from storage), and a
killed worker group is restarted up to ``max_failures`` times from the latest checkpoint.
"""

from __future__ import annotations

from pathlib import Path

# ---------------------------------------------------------------------------- worker side


def rank() -> int:
    import ray.train

    return ray.train.get_context().get_world_rank()


def world_size() -> int:
    import ray.train

    return ray.train.get_context().get_world_size()


def local_rank() -> int:
    import ray.train

    return ray.train.get_context().get_local_rank()


def shard_rows(name: str) -> list[dict]:
    """This worker's shard of dataset ``name`` as plain rows, in a canonical (content) order.

    Every worker is handed the whole dataset (see ``run_trainer``) and keeps its own deterministic
    share: Ray Data's streaming split hands rows to whichever worker asks first, so which rows a
    worker trained on (and so the model) changed from run to run, and a resumed run could not
    reproduce an uninterrupted one.
    """
    import ray.train

    from glore_ray.training.data import deterministic_shard

    rows = ray.train.get_dataset_shard(name)
    return deterministic_shard(lambda: (dict(row) for row in rows.iter_rows()), rank(), world_size())


def latest_checkpoint(fallback_dir: str | None = None):
    """Ray Train's latest checkpoint; else ``fallback_dir`` (found on disk by the driver: Ray Train
    V2 restores only checkpoints its snapshot recorded, and a driver killed right after a
    checkpoint was written can leave it unrecorded; V2 dropped ``resume_from_checkpoint``)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and fallback_dir:
        checkpoint = ray.train.Checkpoint.from_directory(fallback_dir)
    return checkpoint


def report(metrics: dict, directory: str | None) -> None:
    """Report metrics (and the directory as a checkpoint). Every worker calls it; the files all
    workers report are merged into one checkpoint directory."""
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(directory) if directory else None
    ray.train.report(metrics, checkpoint=checkpoint)


# ---------------------------------------------------------------------------- driver side


def dataset_from(rows_or_dir):
    """A Ray Data dataset from a list of rows or a Parquet directory."""
    import ray.data

    if isinstance(rows_or_dir, (str, Path)):
        return ray.data.read_parquet(str(rows_or_dir))
    return ray.data.from_items(list(rows_or_dir))


def run_trainer(train_loop, loop_config: dict, train_cfg, dataset, storage_path: str, name: str,
                max_failures: int):
    """Fit a TorchTrainer; returns the local directory of the latest checkpoint."""
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=train_cfg.num_workers, use_gpu=train_cfg.use_gpu,
                                               resources_per_worker={"CPU": train_cfg.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=name, storage_path=str(Path(storage_path).resolve()),
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures)),
        datasets={"train": dataset},
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),  # workers pick their share: shard_rows
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training under {storage_path}/{name} reported no checkpoint")
    return result.checkpoint.path
