"""Run folders: the files a run writes and how they are read back.

One run per output folder: a folder that holds a run is continued (resume) or replaced (overwrite)
only when asked, and only a hydraplus run is ever deleted (the rule of the CLI's ``--out`` and of
``hydraplus.distil(out=...)``). Every model of a run has its own sub-folder::

    RUN/config.json               the run: its kind, seed, versions, ... (see the writers)
    RUN/<model>/model.pt          weights (state dict, weights-only loadable)
    RUN/<model>/last.ckpt         full training state (resume)
    RUN/<model>/log/metrics.csv   every loss term per epoch
    RUN/<model>/early_stopping.json   the epoch whose weights model.pt holds (students with patience)
    RUN/<model>/auto_lambda.json  the automatic lambda's start, end and target
    RUN/cache/                    the teacher's outputs on the training set
    RUN/evaluation.json, .md      the evaluation (`hydraplus.evaluation`)
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

import hydraplus
from hydraplus.io import atomic_write_text

CONFIG = "config.json"
MODEL = "model.pt"
EARLY_STOPPING = "early_stopping.json"
AUTO_LAMBDA = "auto_lambda.json"


def versions() -> dict[str, str]:
    """The versions a run was made with, saved in its ``config.json``."""
    return {"hydraplus": hydraplus.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def write_early_stopping(folder: Path, record: dict[str, Any]) -> None:
    """A student folder's early-stopping record (`EarlyStopping.record`)."""
    atomic_write_text(Path(folder) / EARLY_STOPPING, json.dumps(record, indent=2))


def read_early_stopping(folder: Path) -> dict[str, Any] | None:
    """A student folder's early-stopping record, or None (trained for all its epochs)."""
    path = Path(folder) / EARLY_STOPPING
    return json.loads(path.read_text()) if path.is_file() else None


def write_auto_lambda(folder: Path, record: dict[str, Any]) -> None:
    """A student folder's automatic-lambda record: start, final value and target."""
    atomic_write_text(Path(folder) / AUTO_LAMBDA, json.dumps(record, indent=2))


def _has_run_config(folder: Path) -> bool:
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and ("kind" in meta or "config" in meta)


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds hydraplus runs: a ``config.json`` that distil wrote, or one in a
    sub-folder (train's ``seed-N``, demo's runs)."""
    path = Path(path)
    return _has_run_config(path) or any(_has_run_config(sub) for sub in path.iterdir() if sub.is_dir())


def prepare_out_dir(path: Path, resume: bool, overwrite: bool) -> Path:
    """Refuse to mix runs: an existing non-empty folder needs ``resume`` or ``overwrite``, and
    ``overwrite`` deletes a hydraplus run only (never a folder of other files). Creates the folder
    and checks it can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output path {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        run = is_run_folder(path)
        if not run and not resume:
            raise ValueError(f"output folder {path} is not empty and holds no hydraplus run (no config.json "
                             f"of one){'; --overwrite deletes runs only' if overwrite else ''}: choose a new "
                             "or empty folder")
        if overwrite:
            shutil.rmtree(path)
        elif not resume:
            raise ValueError(f"output folder {path} already holds a run; pass --resume (resume=True) to "
                             "continue it or --overwrite (overwrite=True) to replace it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"output folder {path} is not writable ({err.strerror or err})") from err
    return path
