"""The engine's checkpoint callback: ``last.ckpt`` kept current atomically."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class AtomicCheckpoint(Callback):
    """Keeps ``last.ckpt`` (full training state) current every ``every`` epochs and at the last
    one (the epoch cap, or an epoch after which training was told to stop), atomically.

    The state is captured at the end of an epoch (where Lightning resumes cleanly) into a
    temporary file, which replaces ``last.ckpt`` only once that epoch has fully finished (its
    CSV log row written, the learning rate stepped): at the next epoch's start, at the end of
    training, or when training stops with an error. A run killed at any moment thus leaves a
    ``last.ckpt`` whose epochs are all in the log. On several processes every one takes part in
    saving (Lightning gathers the state and waits for all), and global rank 0 alone handles files.
    """

    def __init__(self, folder: Path, every: int = 1):
        if every < 1:
            raise ValueError(f"checkpoint interval must be >= 1 epoch, got {every}")
        self.path, self.every = Path(folder) / "last.ckpt", every
        self.pending = self.path.with_name(f".{self.path.name}.tmp")
        self._pending_epoch: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every == 0 or epoch >= (trainer.max_epochs or epoch) or trainer.should_stop:
            writer = trainer.is_global_zero
            if writer:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                trainer.save_checkpoint(self.pending)  # on every process; rank 0 writes the file
                if writer:
                    with open(self.pending, "rb") as f:
                        os.fsync(f.fileno())
            except BaseException:  # e.g. a full disk: no partial file stays behind
                if writer:
                    self.pending.unlink(missing_ok=True)
                raise
            self._pending_epoch = trainer.current_epoch

    def _publish(self, trainer: L.Trainer) -> None:
        """Rename the pending checkpoint over ``last.ckpt`` once its epoch has completed."""
        if self._pending_epoch is not None and trainer.current_epoch > self._pending_epoch:
            # Forget the pending epoch before renaming: a Ctrl-C raised right after the rename
            # must not make `on_exception` rename the (now gone) file a second time.
            self._pending_epoch = None
            if trainer.is_global_zero:
                os.replace(self.pending, self.path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._publish(trainer)
        # A pending file whose epoch never finished (or that was never completed): the
        # older last.ckpt stays, the temporary file goes.
        if trainer.is_global_zero:
            self.pending.unlink(missing_ok=True)
        self._pending_epoch = None
