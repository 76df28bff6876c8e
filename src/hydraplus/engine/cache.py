"""Teacher-output cache: run the ensemble once per training example, reuse it from disk.

The outputs of ``predict(ensemble, x)`` are stored as a ``.npy`` file in the cache folder
and loaded back memory-mapped. The file name carries a SHA-256 key over the teacher's
``state_dict`` tensors, the input tensor and the device type, so a changed teacher or
changed data always gets a new file (a cache entry is never stale, only unused). A small
JSON sidecar next to it records what the key was computed from. Both are written to a
temporary file first and renamed into place, so a crash never leaves a partial entry.

Only for deterministic models (eval-mode outputs that depend on the weights and input
alone), which a trained ``Ensemble`` is. A run on several processes computes the entry once, on
global rank 0, and the others read it (`TeacherOutputs`), so the cache folder must be on a
filesystem every process sees.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from torch import Tensor, nn

from hydraplus.core.predict import predict
from hydraplus.io import atomic_path, atomic_write_text

FORMAT_VERSION = 1


def _digest(tensors: Iterable[tuple[str, Tensor]]) -> str:
    """SHA-256 over named tensors: each one's name, dtype, shape and raw bytes, in order."""
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy
    return h.hexdigest()


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every ``state_dict`` entry (weights and buffers)."""
    return _digest(model.state_dict().items())


def tensor_digest(x: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and contents."""
    return _digest([("x", x)])


def _load(path: Path, rows: int) -> Tensor | None:
    """The cached outputs as a memory-mapped (copy-on-write) tensor, or None if unusable."""
    try:
        arr = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if arr.ndim != 3 or arr.shape[0] != rows:
        return None
    return torch.from_numpy(arr)


def _write(model: nn.Module, x: Tensor, path: Path, batch_size: int) -> None:
    """Stream ``predict`` chunk by chunk into a temporary .npy file, then rename it to ``path``."""
    with atomic_path(path) as tmp:
        out: np.memmap | None = None
        start = 0
        for chunk in torch.split(x, batch_size):
            y = predict(model, chunk, batch_size).numpy()
            if out is None:
                out = open_memmap(tmp, mode="w+", dtype=y.dtype, shape=(len(x), *y.shape[1:]))
            out[start : start + len(y)] = y
            start += len(y)
        assert out is not None
        out.flush()
        del out


def teacher_outputs(model: nn.Module, x: Tensor, cache_dir: Path | None, batch_size: int = 1024, *,
                    compute_missing: bool = True) -> Tensor:
    """``predict(model, x)`` (``[len(x), N, D]`` on the CPU), cached in ``cache_dir``.

    With ``cache_dir=None`` it just calls ``predict``. Otherwise the outputs are computed
    only when no entry for this teacher state, input and device exists (an error instead with
    ``compute_missing=False``); the returned tensor is memory-mapped from the cache file (writes
    to it never reach the file).
    """
    if cache_dir is None:
        return predict(model, x, batch_size)
    if len(x) == 0:
        raise ValueError("cannot predict on an empty input")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device.type
    teacher, data = state_digest(model), tensor_digest(x)
    key = hashlib.sha256(f"v{FORMAT_VERSION}|{teacher}|{data}|{device}".encode()).hexdigest()
    path = cache_dir / f"teacher-{key}.npy"
    cached = _load(path, len(x)) if path.is_file() else None
    if cached is not None:
        return cached
    if not compute_missing:
        raise FileNotFoundError(f"no teacher-output cache entry {path}: global rank 0 writes it before the "
                                "other processes read it, so either the folder is not on a filesystem every "
                                "process (every node) sees, or this process's teacher or training data "
                                "differ from rank 0's (every process must build the same: seed what is "
                                "random)")
    _write(model, x, path, batch_size)
    out = _load(path, len(x))
    if out is None:
        raise RuntimeError(f"teacher-output cache file {path} could not be read back")
    atomic_write_text(path.with_suffix(".json"), json.dumps({
        "format": FORMAT_VERSION,
        "key": key,
        "teacher_sha256": teacher,
        "data_sha256": data,
        "data_shape": list(x.shape),
        "data_dtype": str(x.dtype),
        "device": device,
        "shape": list(out.shape),
        "dtype": str(out.dtype),
        "torch": torch.__version__,
    }, indent=2))
    return out


class TeacherOutputs:
    """`teacher_outputs` of ``model`` on ``x``, shared by the processes of a run and by its students.

    `prepare` computes and caches them (the engine's data calls it on global rank 0 while the
    other processes wait); `load` gives them on every process, reading the cache entry rank 0
    wrote (or, with ``cache_dir=None``, predicting in memory). Each happens once per process.
    """

    def __init__(self, model: nn.Module, x: Tensor, cache_dir: Path | None, batch_size: int = 1024):
        self.model, self.x, self.cache_dir, self.batch_size = model, x, cache_dir, batch_size
        self._outputs: Tensor | None = None

    def prepare(self) -> None:
        if self._outputs is None:
            self._outputs = teacher_outputs(self.model, self.x, self.cache_dir, self.batch_size)

    def load(self) -> Tensor:
        if self._outputs is None:  # a process other than rank 0: rank 0 has written the entry
            self._outputs = teacher_outputs(self.model, self.x, self.cache_dir, self.batch_size,
                                            compute_missing=False)
        return self._outputs
