"""Early stopping of a student on its validation KL to the teacher (docs/method.md#early-stopping).

After every epoch the student predicts the validation inputs (eval mode; a sampling student draws
from a generator seeded the same way each time, and the training's random state is left as it
was), and the KL from the teacher's predictive distribution to the student's is measured
(`hydraplus.core.divergence.predictive_kl`). Training stops once ``patience`` epochs in a row
have not lowered it, and the weights of the best epoch are restored at the end. The best value,
its epoch, the count of epochs without improvement and the best weights are part of the training
checkpoint, so a resumed run stops where and as an uninterrupted one does.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from hydraplus.core.divergence import predictive_kl
from hydraplus.core.losses import check_task
from hydraplus.core.predict import predict
from hydraplus.engine.distributed import from_rank_zero

MONITOR = "val/kl"  # the CSV log's column
SEED = 0  # sampling students draw the validation predictions from a generator seeded with it


def _done(module: L.LightningModule) -> bool:
    """Whether the module says early stopping has had its say (an automatic lambda's diversity phase,
    which follows the lambda = 0 run that early stopping ended: `hydraplus.engine.modules`)."""
    return bool(getattr(module, "early_stopping_done", False))


class EarlyStopping(Callback):
    """Stops the fit after ``patience`` epochs without a lower validation KL; restores the best weights.

    ``inputs`` are the validation inputs and ``teacher_outputs [B, N, D]`` the teacher's outputs on
    them (the teacher is frozen: computed once). Must come before the checkpoint callback, so that
    each epoch's checkpoint holds that epoch's decision.
    """

    def __init__(self, inputs: Tensor, teacher_outputs: Tensor, task: str, patience: int, *,
                 precision: str = "32", batch_size: int = 1024):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if len(inputs) == 0:
            raise ValueError("early stopping needs validation inputs, got none")
        if len(teacher_outputs) != len(inputs):
            raise ValueError(f"{len(inputs)} validation inputs but {len(teacher_outputs)} teacher outputs")
        self.inputs, self.teacher_outputs = inputs, teacher_outputs
        self.task, self.patience = check_task(task), patience
        self.precision, self.batch_size = precision, batch_size
        self.best = math.inf
        self.best_epoch = 0  # epochs trained by the best weights (0: none yet)
        self.epochs_run = 0
        self.wait = 0  # epochs since the best
        self.stopped = False
        self.best_state: dict[str, Tensor] | None = None
        self._restored = False

    @property
    def state_key(self) -> str:
        return "hydraplus_early_stopping"

    def measure(self, module: L.LightningModule) -> float:
        """The validation KL of ``module``'s current weights."""
        device = next(module.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(SEED)
            outputs = predict(module, self.inputs, self.batch_size, self.precision)
        return predictive_kl(outputs, self.teacher_outputs, self.task)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped and not _done(pl_module):  # resumed from the checkpoint of the epoch that stopped
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _done(pl_module):
            return
        value = self.measure(pl_module)
        if trainer.world_size > 1:  # one decision for all processes: rank 0's
            shared = torch.tensor([value], dtype=torch.float64, device=pl_module.device)
            from_rank_zero([shared])
            value = shared.item()
        self.epochs_run = trainer.current_epoch + 1
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, self.epochs_run, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        else:
            self.wait += 1
        if self.wait >= self.patience:
            self.stopped = True
            trainer.should_stop = True
        extras = getattr(pl_module, "epoch_extras", None)
        if extras is not None:  # logged with the epoch's row
            extras[MONITOR] = value

    def _restore(self, pl_module: L.LightningModule) -> None:
        if not self._restored and self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
        self._restored = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(pl_module)  # before the module shares rank 0's weights with every process

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(pl_module)  # a resumed fit that had nothing left to train skips on_train_end

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "wait": self.wait, "stopped": self.stopped, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state_dict["best"]), int(state_dict["best_epoch"])
        self.epochs_run, self.wait = int(state_dict["epochs_run"]), int(state_dict["wait"])
        self.stopped, self.best_state = bool(state_dict["stopped"]), state_dict["best_state"]

    def record(self, max_epochs: int) -> dict[str, Any]:
        """What was decided, for the run's files: the restored weights are those after ``best_epoch``
        epochs (1-based; the CSV log's 0-based epoch ``best_epoch - 1``)."""
        return {"monitor": f"{MONITOR}: mean KL(teacher's predictive || student's predictive) on the "
                           f"{len(self.inputs)} validation inputs",
                "patience": self.patience, "max_epochs": max_epochs, "epochs_run": self.epochs_run,
                "best_epoch": self.best_epoch, "best_value": self.best if math.isfinite(self.best) else None,
                "stopped_early": self.stopped}
