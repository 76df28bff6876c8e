"""Output folders: one run each. A folder that holds a run is continued (resume) or replaced
(overwrite) only when asked, and only a hydraplus run is ever deleted. The rule of the CLI's
``--out`` and of ``hydraplus.distil(out=...)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CONFIG = "config.json"


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
