"""Atomic writes: the target is either the old file or the complete new one, never partial;
no temporary files are left behind, whether the write succeeds or fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from hydraplus import io as checkpoint
from hydraplus.io import atomic_torch_save, atomic_write_bytes, atomic_write_text, safe_load


def test_text_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "results.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_torch_save_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    state = {"w": torch.randn(5, 5)}
    atomic_torch_save(state, tmp_path / "model.pt")
    assert torch.equal(safe_load(tmp_path / "model.pt")["w"], state["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"])
def test_failed_text_write_keeps_the_old_file(error: BaseException, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    atomic_write_text(target, "old complete contents")

    def fail(fd: int) -> None:  # the new bytes are written, then the sync fails
        raise error

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(error)):
        atomic_write_text(target, "new contents that never fully land")
    assert target.read_text() == "old complete contents"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"old")

    def fail(src: Any, dst: Any) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_failed_torch_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.pt"
    old = {"w": torch.ones(3)}
    atomic_torch_save(old, target)

    def partial_save(obj: Any, f: Any) -> None:
        """Write half a checkpoint, then crash (as a full disk or a kill mid-write would)."""
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise RuntimeError("crashed mid-write")

    monkeypatch.setattr(checkpoint.torch, "save", partial_save)
    with pytest.raises(RuntimeError, match="crashed mid-write"):
        atomic_torch_save({"w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(safe_load(target)["w"], old["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
