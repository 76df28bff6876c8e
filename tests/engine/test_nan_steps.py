"""Steps with a non-finite loss are skipped (weights untouched) and counted in the CSV log;
too many in a row stop training with NonFiniteLossError, leaving the last good checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hydraplus.config import StudentSpec
from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.engine.modules import DistillModule, EnsembleModule, NonFiniteLossError
from hydraplus.engine.trainer import fit
from hydraplus.io import safe_load

B, N, M, C, F = 16, 3, 3, 3, 2


def make_module(kind: str, max_nan_steps: int) -> tuple[L.LightningModule, list[Tensor]]:
    """A small ensemble or Hydra student module and one batch (as a mutable list of tensors)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(B, F, generator=g), torch.randint(0, C, (B,), generator=g)
    if kind == "ensemble":
        ensemble = Ensemble.from_factory(lambda: nn.Linear(F, C), N)
        module: L.LightningModule = EnsembleModule(ensemble, "classification", 0.01, 1e-4, epochs=10,
                                                   max_nan_steps=max_nan_steps)
        return module, [x.unsqueeze(1).expand(B, N, F).clone(), y.unsqueeze(1).expand(B, N).clone()]
    student = MultiHeadStudent.from_factories(lambda: nn.Sequential(nn.Linear(F, 8), nn.ReLU()),
                                              lambda: nn.Linear(8, C), M)
    spec = StudentSpec("hydra+", heads=M, alpha=0.9, beta=1.0, lam=LambdaSchedule(1.0), lr=0.01,
                       weight_decay=1e-8, epochs=10)
    module = DistillModule(student, "hydra+", "classification", spec, max_nan_steps=max_nan_steps)
    return module, [x, y, torch.randn(B, N, C, generator=g)]


def weights(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def log_column(folder: Path, column: str) -> list[float]:
    with (folder / "log" / "metrics.csv").open(newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f) if row[column]]


class PoisonInputs(L.Callback):
    """Fills the (single, reused) input batch with NaN after ``epoch``."""

    def __init__(self, x: Tensor, epoch: int):
        self.x, self.epoch = x, epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            self.x.fill_(float("nan"))


@pytest.mark.parametrize("kind", ["ensemble", "student"])
def test_nan_batch_is_skipped_and_counted(kind: str, tmp_path: Path) -> None:
    module, batch = make_module(kind, max_nan_steps=5)
    batch[0].fill_(float("nan"))
    before = weights(module)
    fit(module, DataLoader([tuple(batch)], batch_size=None), folder=tmp_path, label=kind, epochs=2,
        progress=False)
    assert module.skipped_steps == 2
    after = weights(module)
    assert all(torch.equal(before[k], after[k]) for k in before), "a skipped step changed the weights"
    assert log_column(tmp_path, "train/skipped_steps") == [1.0, 2.0]


@pytest.mark.parametrize("kind", ["ensemble", "student"])
def test_too_many_nan_steps_raise_and_keep_the_last_good_checkpoint(kind: str, tmp_path: Path) -> None:
    module, batch = make_module(kind, max_nan_steps=3)
    loader = DataLoader([tuple(batch)], batch_size=None)
    poison = PoisonInputs(batch[0], epoch=1)  # epochs 0, 1 train; 2, 3 skip; 4 raises
    module.configure_callbacks = lambda: [poison]  # type: ignore[method-assign]
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps had a non-finite loss"):
        fit(module, loader, folder=tmp_path, label=kind, epochs=10, progress=False)
    assert module.skipped_steps == 3
    checkpoint = safe_load(tmp_path / "last.ckpt")
    assert checkpoint["epoch"] == 3, "the last completed epoch's checkpoint is the one kept"
    assert checkpoint["hydraplus"]["skipped_steps"] == checkpoint["hydraplus"]["nan_streak"] == 2
    trained = weights(module)  # unchanged since the poisoning: every later step was skipped
    saved = checkpoint["state_dict"]
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[k], trained[k]) for k in saved)
    assert not list(tmp_path.glob(".*.tmp"))
    assert log_column(tmp_path, "train/skipped_steps") == [0.0, 0.0, 1.0, 2.0]

