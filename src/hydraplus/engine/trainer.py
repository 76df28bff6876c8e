"""Run a Lightning fit with hydraplus defaults: atomic checkpoints, CSV log, progress."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from hydraplus.engine.checkpoint import AtomicCheckpoint, CheckpointError, safe_load
from hydraplus.engine.progress import EpochProgress

for _name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
warnings.filterwarnings("ignore", ".*logs directory .* exists and is not empty.*")


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


def fit(
    module: L.LightningModule,
    loader: DataLoader,
    *,
    folder: Path,
    label: str,
    epochs: int,
    progress: bool = True,
    accelerator: str = "cpu",
    checkpoint_every: int = 1,
    resume: bool = False,
) -> L.Trainer:
    """Train ``module`` for ``epochs``; resume from ``folder/last.ckpt`` when asked and present."""
    folder = Path(folder)
    callbacks: list = [AtomicCheckpoint(folder, checkpoint_every)]
    if progress:
        callbacks.append(EpochProgress(label))
    logger = CSVLogger(folder, name="", version="log")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        deterministic=True,
    )
    last = folder / "last.ckpt"
    ckpt_path = None
    if resume and last.is_file():
        state = safe_load(last)  # clear error for a corrupt or unsafe file before Lightning sees it
        if not isinstance(state, dict) or "epoch" not in state:
            raise CheckpointError(f"{last} is not a training checkpoint (it has no epoch); "
                                  "delete it to train from scratch")
        ckpt_path = str(last)
        _keep_log_rows(logger, int(state["epoch"]))
    trainer.fit(module, loader, ckpt_path=ckpt_path, weights_only=True)
    return trainer
