"""safe_load loads weights-only files and refuses everything else with a clear CheckpointError
(resuming a run from such files: tests/integration/test_corrupt_checkpoints.py)."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from hydraplus.io import CheckpointError, safe_load


class Custom:
    """An arbitrary class: unpickling it means importing and calling code."""

    def __init__(self) -> None:
        self.value = 1


class Payload:
    """A pickle whose loading would run a shell command (it must never run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_weights_only_file_loads(tmp_path: Path) -> None:
    state = {"w": torch.randn(3, 4), "step": 7, "nested": {"b": torch.ones(2)}}
    torch.save(state, tmp_path / "ok.pt")
    loaded = safe_load(tmp_path / "ok.pt")
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7


@pytest.mark.parametrize("kind", ["torch.save of a custom class", "plain pickle with __reduce__",
                                  "torch.save with __reduce__"])
def test_file_needing_code_execution_is_refused(kind: str, tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "model.pt"
    if kind == "torch.save of a custom class":
        torch.save({"model": Custom()}, path)
    elif kind == "plain pickle with __reduce__":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:
        torch.save({"x": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*model\.pt: it needs arbitrary unpickling"):
        safe_load(path)
    assert not marker.exists(), "the payload ran"


def test_refusal_names_the_imported_object(tmp_path: Path) -> None:
    torch.save({"model": Custom()}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"it imports .*Custom"):
        safe_load(tmp_path / "c.pt")


def saved_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.randn(64, 64)}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("content", [
    pytest.param(lambda: saved_bytes()[: len(saved_bytes()) // 2], id="truncated"),
    pytest.param(lambda: saved_bytes()[:10], id="truncated-header"),
    pytest.param(lambda: bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                             dtype=torch.uint8).tolist()), id="random-bytes"),
    pytest.param(lambda: b"", id="empty"),
    pytest.param(lambda: b"hello, not a checkpoint", id="text"),
])
def test_corrupt_file_gives_checkpoint_error_naming_it(content, tmp_path: Path) -> None:
    path = tmp_path / "broken.ckpt"
    path.write_bytes(content())
    with pytest.raises(CheckpointError,
                       match=r"cannot read checkpoint .*broken\.ckpt: file is truncated or corrupted"):
        safe_load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*nothing\.pt"):
        safe_load(tmp_path / "nothing.pt")
    with pytest.raises(CheckpointError, match=r"is not a file"):
        safe_load(tmp_path)

