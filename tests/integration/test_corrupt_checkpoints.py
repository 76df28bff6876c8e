"""Resuming training from a corrupt, unsafe or foreign ``last.ckpt`` is a clear CheckpointError
(safe_load itself: tests/test_safe_load.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from _dummies import toy_config
from hydraplus.config import ExperimentConfig, parse_config
from hydraplus.data.toy import make_spiral
from hydraplus.io import CheckpointError
from hydraplus.pipeline.train import train_ensemble


class Custom:
    """An arbitrary class: unpickling it means importing and calling code."""

    def __init__(self) -> None:
        self.value = 1


def saved_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.randn(64, 64)}, buf)
    return buf.getvalue()


def small_config() -> ExperimentConfig:
    """toy-spiral, 2 epochs, N = 2 (only the ensemble trains here)."""
    return parse_config(toy_config(epochs=2, members=2))


@pytest.mark.parametrize("content", [b"garbage" * 10, saved_bytes()[:100]], ids=["garbage", "truncated"])
def test_resume_from_corrupt_last_ckpt(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*last\.ckpt"):
        train_ensemble(small_config(), make_spiral(0), tmp_path, 0, progress=False, resume=True)


def test_resume_from_unsafe_last_ckpt(tmp_path: Path) -> None:
    torch.save({"epoch": 0, "model": Custom()}, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match="needs arbitrary unpickling"):
        train_ensemble(small_config(), make_spiral(0), tmp_path, 0, progress=False, resume=True)


def test_resume_from_a_non_training_file(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"last\.ckpt is not a training checkpoint"):
        train_ensemble(small_config(), make_spiral(0), tmp_path, 0, progress=False, resume=True)
