"""Run a Lightning fit with hydraplus defaults: atomic checkpoints, CSV log, progress; on one
device or on several processes with DDP (`hydraplus.engine.distributed`)."""

from __future__ import annotations

import csv
import logging
import signal
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch.utils.deterministic
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from hydraplus.core.precision import check_precision
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.engine.data import SeededData
from hydraplus.engine.distributed import check_world_size, close_at_exit, lightning_strategy
from hydraplus.engine.progress import RunProgress, progress_callback
from hydraplus.io import CheckpointError, safe_load

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
_NOISE = (".*does not have many workers.*", ".*isinstance.treespec, LeafSpec.*",
          ".*logs directory .* exists and is not empty.*",
          # DDP on channels-last weights with a size-1 dimension, whose two layouts' strides differ
          ".*Grad strides do not match bucket view strides.*")


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up banners and known-harmless warnings off, for this fit only."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for pattern in _NOISE:
            warnings.filterwarnings("ignore", pattern)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _keep_log_rows(logger: CSVLogger, last_epoch: int) -> None:
    """Carry the CSV rows of epochs ``<= last_epoch`` (those the checkpoint covers) into the new log.

    CSVLogger starts a fresh ``metrics.csv``; the epochs after the checkpoint are redone and
    logged again, so the resumed log reads like an uninterrupted one.
    """
    path = Path(logger.log_dir) / "metrics.csv"
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = [row for row in csv.DictReader(f) if row.get("epoch") and int(row["epoch"]) <= last_epoch]
    writer = logger.experiment  # this removes the old metrics.csv
    writer.metrics[:0] = rows
    writer.save()


def _trainer(folder: Path, label: str, epochs: int, progress: bool | RunProgress, accelerator: str,
             checkpoint_every: int, precision: str, devices: int, num_nodes: int,
             strategy: str, extra: Sequence[Callback] = ()) -> tuple[L.Trainer, CSVLogger]:
    # `extra` first: each epoch's checkpoint holds what they decided at its end (early stopping)
    callbacks: list = [*extra, AtomicCheckpoint(folder, checkpoint_every)]
    if progress:
        callbacks.append(progress_callback(label, progress if isinstance(progress, RunProgress) else None))
    logger = CSVLogger(folder, name="", version="log")
    world_size = devices * num_nodes
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=lightning_strategy(strategy, world_size),
        # Global-batch statistics as on one device (CUDA only: torch's SyncBatchNorm cannot run on CPUs).
        sync_batchnorm=world_size > 1 and accelerator != "cpu",
        use_distributed_sampler=False,  # SeededData gives each process its rows itself
        precision=precision,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=any(isinstance(callback, ProgressBar) for callback in callbacks),
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        deterministic=True,
    )
    # Deterministic mode also fills every new tensor with NaN (to expose reads of unset memory):
    # 6% of a CIFAR-10 student step, for memory every kernel here writes before it reads.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return trainer, logger


def fit(
    module: L.LightningModule,
    data: DataLoader | SeededData,
    *,
    folder: Path,
    label: str,
    epochs: int,
    progress: bool | RunProgress = True,
    accelerator: str = "cpu",
    checkpoint_every: int = 1,
    resume: bool = False,
    precision: str = "32",
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """Train ``module`` on ``data`` for ``epochs`` in ``precision`` (`hydraplus.core.precision`);
    resume from ``folder/last.ckpt`` when asked and present.

    ``devices`` per node × ``num_nodes`` processes train together with ``strategy`` (``auto``: DDP
    when there are several); ``data`` must then be `SeededData`, which gives each process its rows.
    A checkpoint is resumed only with the world size it was saved with. ``callbacks`` (e.g.
    `hydraplus.engine.early_stopping.EarlyStopping`) run before the checkpoint is taken each epoch,
    and their state is part of it. ``progress`` (`hydraplus.engine.progress`): a bar on a terminal,
    a line per epoch otherwise; a `RunProgress` adds the time left for the whole run.

    Ctrl-C stops after Lightning's clean shutdown and is raised again as KeyboardInterrupt
    (the last finished checkpoint stays), so callers can say how to resume.
    """
    folder = Path(folder)
    last = folder / "last.ckpt"
    ckpt_path = None
    if devices * num_nodes > 1 and not isinstance(data, SeededData):
        raise TypeError(f"training on {devices * num_nodes} processes needs SeededData (each process takes "
                        f"its rows of every batch), got {type(data).__name__}")
    with _quiet_lightning():
        check_precision(precision, "cuda" if accelerator in ("gpu", "cuda") else "cpu")
        epochs += getattr(module, "extra_epochs", 0)  # an automatic lambda's diversity phase, if it has one
        trainer, logger = _trainer(folder, label, epochs, progress, accelerator, checkpoint_every, precision,
                                   devices, num_nodes, strategy, callbacks)
        if resume and last.is_file():
            state = safe_load(last)  # clear error for a corrupt or unsafe file before Lightning sees it
            if not isinstance(state, dict) or "epoch" not in state:
                raise CheckpointError(f"{last} is not a training checkpoint (it has no epoch); "
                                      "delete it to train from scratch")
            check_world_size(state.get("hydraplus", {}).get("world_size", 1), trainer.world_size, str(last))
            ckpt_path = str(last)
            if trainer.is_global_zero:
                _keep_log_rows(logger, int(state["epoch"]))
        if trainer.world_size > 1:
            close_at_exit()
        try:
            trainer.fit(module, data, ckpt_path=ckpt_path, weights_only=True)
        except SystemExit:
            # Lightning answers Ctrl-C by tearing down and calling exit(1).
            if trainer.interrupted:
                signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it
                raise KeyboardInterrupt from None
            raise
    return trainer
