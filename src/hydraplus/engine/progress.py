"""A one-line-per-model progress display: model, epoch, time left."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Callback


class EpochProgress(Callback):
    """Rewrites one terminal line per epoch (at most every 0.1 s); a final line when done."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label, self.stream = label, stream
        self._start = self._last = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # one line for a run on several processes
            return
        now = time.perf_counter()
        done = trainer.current_epoch + 1
        total = trainer.max_epochs or done
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        rate = (now - self._start) / max(done - self._first_epoch, 1)
        left = rate * (total - done)
        end = "\n" if done >= total else ""
        tty = getattr(self.stream, "isatty", lambda: False)()
        if not tty and done < total:
            return
        self.stream.write(f"\r  {self.label:<24} epoch {done:>4}/{total}  "
                          f"{now - self._start:6.1f}s  ~{left:5.1f}s left{end}")
        self.stream.flush()
