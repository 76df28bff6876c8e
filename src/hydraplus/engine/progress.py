"""Training progress a person can follow, on a terminal and in a log.

A run first says which models it will train and roughly how long that takes (`RunProgress`, from
a few timed steps of each model: `step_seconds`). Then each model shows, on a terminal, Lightning's
tqdm bar within each epoch (`ModelBar`: rate, time left); when the output is not a terminal (a
pipe, a SLURM or CI log), one plain line per finished epoch (`EpochLines`). Global rank 0 alone
prints.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, convert_inf
from torch import nn


def duration(seconds: float) -> str:
    """``42.0s``, ``3m05s``, ``1h02m``: short and readable at every scale."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class PlannedModel:
    """One model a run trains: its progress label, epochs (``extra`` of them an automatic lambda's
    diversity phase, which may not run) and estimated training seconds (for all of them)."""

    label: str
    epochs: int
    seconds: float
    extra: int = 0

    def describe(self) -> str:
        """``"hydra+-5 (30 epochs)"``; with a diversity phase ``"... (30 epochs + up to 9 for lambda)"``."""
        base = self.epochs - self.extra
        text = f"{self.label} ({base} epoch{'s' if base != 1 else ''}"
        return text + (f" + up to {self.extra} for lambda)" if self.extra else ")")


class RunProgress:
    """The models of a run, in training order, with their estimated training times.

    `announce` writes the run's first line; while a model trains, `left_after` is the estimated
    time of the models after it, scaled by how far the measured epochs of the models so far
    were from their estimates.
    """

    def __init__(self, models: Sequence[PlannedModel], stream: TextIO | None = None):
        self.models = list(models)
        self.stream = stream if stream is not None else sys.stderr
        self._measured = self._estimated = 0.0

    def announce(self, what: str = "training") -> None:
        names = ", ".join(m.describe() for m in self.models)
        total = sum(m.seconds for m in self.models)
        self.stream.write(f"hydraplus: {what} {names}; about {duration(total)} estimated "
                          "(from a few timed training steps of each)\n")
        self.stream.flush()

    def record_epoch(self, label: str, seconds: float) -> None:
        """One finished epoch of ``label`` took ``seconds``: refines the estimate of the rest."""
        planned = self._planned(label)
        if planned is not None and planned.seconds > 0:
            self._measured += seconds
            self._estimated += planned.seconds / planned.epochs

    def left_after(self, label: str) -> float | None:
        """Estimated seconds of the models after ``label`` (None: ``label`` is not in the plan)."""
        labels = [m.label for m in self.models]
        if label not in labels:
            return None
        scale = self._measured / self._estimated if self._estimated > 0 else 1.0
        return scale * sum(m.seconds for m in self.models[labels.index(label) + 1:])

    def _planned(self, label: str) -> PlannedModel | None:
        return next((m for m in self.models if m.label == label), None)


def step_seconds(model: nn.Module, x: torch.Tensor, *, teacher: nn.Module | None = None,
                 device: str | torch.device = "cpu", precision: str = "32", steps: int = 2) -> float:
    """Seconds of one forward and backward pass of ``model`` on the batch ``x`` (plus a forward of
    ``teacher`` when given) in ``precision``, the mean of ``steps`` after one warm-up, on a copy of
    ``model``: its weights, batch-norm statistics and the random state (dropout) are left as they were."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device).train()
    x = x.to(device)
    if x.dim() == 4:  # the layout convolutions take (hydraplus.core.memory_format), as a training batch
        x = x.contiguous(memory_format=torch.channels_last)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    cuda = [device.index or 0] if device.type == "cuda" else []

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    with torch.random.fork_rng(devices=cuda):
        start = 0.0
        for step in range(steps + 1):
            if step == 1:
                sync()
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                if teacher is not None:
                    with torch.no_grad():
                        teacher(x)
                out = model(x)
            out.float().square().mean().backward()
        sync()
        return (time.perf_counter() - start) / steps


def training_seconds(step: float, examples: int, batch_size: int, epochs: int) -> float:
    """``epochs`` of ``ceil(examples / batch_size)`` steps of ``step`` seconds."""
    return step * math.ceil(examples / batch_size) * epochs


class _Clock:
    """A model's training time: seconds per epoch so far and the time left, for model and run."""

    def __init__(self, label: str, run: RunProgress | None):
        self.label, self.run = label, run
        self.start = self.epoch_start = 0.0
        self.first_epoch = 0

    def started(self, trainer: L.Trainer) -> None:
        self.start = self.epoch_start = time.perf_counter()
        self.first_epoch = trainer.current_epoch

    def left(self, trainer: L.Trainer, done: int) -> tuple[float, float | None]:
        """Seconds left for this model (from its epochs so far) and for the run (None: no plan)."""
        total = trainer.max_epochs or done
        per_epoch = (time.perf_counter() - self.start) / max(done - self.first_epoch, 1)
        model = per_epoch * (total - done)
        rest = None if self.run is None else self.run.left_after(self.label)
        return model, None if rest is None else model + rest


class EpochLines(Callback):
    """One plain, flushed line per finished epoch: model, epoch k/K, training loss, the epoch's
    seconds and the time left (for the output of a pipe, SLURM or CI log)."""

    def __init__(self, label: str, run: RunProgress | None = None, stream: TextIO | None = None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = _Clock(label, run)
        self._pending: tuple[int, float] | None = None  # (epoch done, its seconds), printed next

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock.started(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        self._pending = (trainer.current_epoch + 1, now - self.clock.epoch_start)
        self.clock.epoch_start = now
        if self.clock.run is not None:
            self.clock.run.record_epoch(self.label, self._pending[1])

    # Written once the module's own epoch end has added up the epoch's loss (on every process),
    # which Lightning calls after the callbacks'.
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        done, seconds = self._pending
        self._pending = None
        if not trainer.is_global_zero:
            return
        loss = _train_loss(pl_module)
        loss_text = "" if loss is None else f"  loss {loss:.4f}"
        model, run = self.clock.left(trainer, done)
        run_text = "" if run is None else f", ~{duration(run)} run"
        self.stream.write(f"  {self.label}  epoch {done}/{trainer.max_epochs}{loss_text}  {seconds:.1f}s  "
                          f"left ~{duration(model)} model{run_text}\n")
        self.stream.flush()


def _train_loss(pl_module: L.LightningModule) -> float | None:
    """The epoch's mean training loss as logged (``train/loss``), or None for another module."""
    metrics = getattr(pl_module, "epoch_metrics", None)
    return None if metrics is None else metrics().get("train/loss")


class ModelBar(TQDMProgressBar):
    """Lightning's tqdm bar on ``stream``, one line per model: its label and epoch k/K, steps,
    the epoch's elapsed and remaining time, steps per second, and the time left for the model
    and the run."""

    def __init__(self, label: str, run: RunProgress | None = None, stream: TextIO | None = None):
        super().__init__()
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = _Clock(label, run)

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.label, position=2 * self.process_position, disable=self.is_disabled,
                    leave=True, dynamic_ncols=True, file=self.stream, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.clock.started(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """Lightning's reset of the bar, with the model's label and epoch k/K as its description."""
        bar = self.train_progress_bar
        epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        bar.set_description(f"{self.label} {epoch}", refresh=False)
        bar.reset(total=convert_inf(self.total_train_batches))
        bar.initial = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if self.clock.run is not None:
            self.clock.run.record_epoch(self.label, now - self.clock.epoch_start)
        self.clock.epoch_start = now
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The time left, in place of the logger's version number."""
        if trainer.current_epoch == self.clock.first_epoch:
            return {}
        model, run = self.clock.left(trainer, trainer.current_epoch)
        return {"model left": duration(model)} | ({} if run is None else {"run left": duration(run)})


def progress_callback(label: str, run: RunProgress | None = None, stream: TextIO | None = None) -> Callback:
    """`ModelBar` when ``stream`` (default stderr) is a terminal, `EpochLines` otherwise."""
    stream = stream if stream is not None else sys.stderr
    tty = getattr(stream, "isatty", lambda: False)()
    return (ModelBar if tty else EpochLines)(label, run, stream)
