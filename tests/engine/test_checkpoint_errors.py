"""A checkpoint that cannot be written (a full disk) leaves no temporary file and the old one intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn

from hydraplus.core.containers import Ensemble
from hydraplus.engine import checkpoint
from hydraplus.engine.data import seeded_loader
from hydraplus.engine.modules import EnsembleModule
from hydraplus.engine.trainer import fit


def test_a_full_disk_leaves_no_partial_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    ensemble = Ensemble.from_factory(lambda: nn.Linear(2, 3), 2)
    loader = seeded_loader((x, y), 16, seed=0, streams=2)
    fit(EnsembleModule(ensemble, "classification", 0.01, 0.0, 2), loader, folder=tmp_path, label="t",
        epochs=2, progress=False)
    before = (tmp_path / "last.ckpt").read_bytes()

    def full_disk(self: L.Trainer, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(L.Trainer, "save_checkpoint", full_disk)
    module = EnsembleModule(Ensemble.from_factory(lambda: nn.Linear(2, 3), 2), "classification", 0.01, 0.0, 4)
    with pytest.raises(OSError, match="No space left"):
        fit(module, loader, folder=tmp_path, label="t", epochs=4, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["last.ckpt"]
    assert (tmp_path / "last.ckpt").read_bytes() == before


def test_ctrl_c_right_after_a_checkpoint_is_renamed_keeps_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    loader = seeded_loader((x, y), 16, seed=0, streams=2)
    rename = os.replace
    renamed: list[str] = []

    def rename_then_ctrl_c(src: Any, dst: Any) -> None:
        rename(src, dst)
        renamed.append(str(dst))
        raise KeyboardInterrupt  # as a SIGINT that arrived during the rename is raised after it

    monkeypatch.setattr(checkpoint.os, "replace", rename_then_ctrl_c)
    module = EnsembleModule(Ensemble.from_factory(lambda: nn.Linear(2, 3), 2), "classification", 0.01, 0.0, 4)
    with pytest.raises(KeyboardInterrupt):
        fit(module, loader, folder=tmp_path, label="t", epochs=4, progress=False)
    assert renamed == [str(tmp_path / "last.ckpt")]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 0  # the first epoch's state
