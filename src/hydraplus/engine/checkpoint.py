"""Atomic checkpoint writing and safe (weights-only) loading."""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class CheckpointError(RuntimeError):
    """A checkpoint or teacher file that cannot be loaded safely."""


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (never a half-written file)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# Pickle opcodes that import or call objects: a file using them needs arbitrary unpickling.
_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE"})


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _refused_global(path: Path, err: pickle.UnpicklingError) -> str | None:
    """The object a refused file wanted to import ("" if unnamed), or None if it is not a valid pickle.

    torch names the global it blocked; a plain pickle it could not even parse (protocol 4+ frames,
    or garbage) is told apart by scanning its opcodes without executing anything.
    """
    named = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(err))
    if named:
        return named.group(1)
    strings: list[str] = []
    found: str | None = None
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if found is None and op.name in _CODE_OPCODES:
                    found = (str(arg).replace(" ", ".") if op.name == "GLOBAL"
                             else ".".join(strings[-2:]) if op.name == "STACK_GLOBAL" else "")
                if isinstance(arg, str):
                    strings.append(arg)
    except Exception:
        return None
    return found


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with ``weights_only=True``; clear errors for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}" if not path.exists()
                              else f"checkpoint {path} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        name = _refused_global(path, err)
        if name is None:
            raise CheckpointError(f"cannot read checkpoint {path}: file is truncated or corrupted "
                                  "(not a valid checkpoint or pickle)") from err
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling (code execution"
            f"{f', it imports {name}' if name else ''}), which hydraplus never allows; "
            "only weights-only files load"
        ) from err
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path}: file is truncated or corrupted "
                              f"({_first_line(err)})") from err


class AtomicCheckpoint(Callback):
    """Keeps ``last.ckpt`` (full training state) current every ``every`` epochs, atomically.

    The state is captured at the end of an epoch (where Lightning resumes cleanly) into a
    temporary file, which replaces ``last.ckpt`` only once that epoch has fully finished (its
    CSV log row written, the learning rate stepped): at the next epoch's start, at the end of
    training, or when training stops with an error. A run killed at any moment thus leaves a
    ``last.ckpt`` whose epochs are all in the log.
    """

    def __init__(self, folder: Path, every: int = 1):
        if every < 1:
            raise ValueError(f"checkpoint interval must be >= 1 epoch, got {every}")
        self.path, self.every = Path(folder) / "last.ckpt", every
        self.pending = self.path.with_name(f".{self.path.name}.tmp")
        self._pending_epoch: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every == 0 or epoch >= (trainer.max_epochs or epoch):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.pending)
            with open(self.pending, "rb") as f:
                os.fsync(f.fileno())
            self._pending_epoch = trainer.current_epoch

    def _publish(self, trainer: L.Trainer) -> None:
        """Rename the pending checkpoint over ``last.ckpt`` once its epoch has completed."""
        if self._pending_epoch is not None and trainer.current_epoch > self._pending_epoch:
            os.replace(self.pending, self.path)
            self._pending_epoch = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._publish(trainer)
        if self._pending_epoch is not None:  # its epoch never finished: keep the older last.ckpt
            self.pending.unlink(missing_ok=True)
            self._pending_epoch = None
