"""Files that never end half-written and checkpoints that never run code.

Atomic writes (a temporary file renamed over the target) and weights-only loading with
clear errors. Free of Lightning, so reports and exports can use it without the engine.
"""

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

import torch


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
