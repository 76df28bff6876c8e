"""Run folders: the files a run writes and how they are read back.

One run per output folder: a folder that holds a run is continued (resume) or replaced (overwrite)
only when asked, and only a hydraplus run is ever deleted (the rule of the CLI's ``--out`` and of
``hydraplus.distil(out=...)``). Every model of a run has its own sub-folder::

    RUN/config.json               the run: its kind, seed, versions, ... (see the writers)
    RUN/<model>/model.pt          weights (state dict, weights-only loadable)
    RUN/<model>/last.ckpt         full training state (resume)
    RUN/<model>/log/metrics.csv   every loss term per epoch
    RUN/<model>/early_stopping.json   the epoch whose weights model.pt holds (students with patience)
    RUN/<model>/training.json     its training time (kept when the run is evaluated again)
    RUN/<model>/auto_lambda.json  the automatic lambda's start, end and target
    RUN/cache/                    the teacher's outputs on the training set
    RUN/evaluation.json, .md      the evaluation (`hydraplus.evaluation`: one schema for every run)

A config run's ``config.json`` holds its config (`hydraplus.pipeline.config_run`). A distil run
(`hydraplus.distil(out=...)`, kind ``"distil"``) cannot rebuild a user's student from a config of
registered architectures, so it keeps the student and the teacher as ``torch.export`` programs
(dynamic batch size, checked against the modules when written)::

    OUT/config.json              kind "distil", task, student (its name), method, spec, seed,
                                 precision, input_shape, val_fraction (early stopping), versions
                                 and the caller's record (e.g. the inputs' normalisation); written
                                 when training starts and completed with train_seconds, programs,
                                 early_stopping, member_validation and, without val=, warnings (the
                                 student far from its teacher on the held-out part) when it ends;
                                 spread_scale and spread_data once a spread scale is fitted
                                 (`hydraplus distil --spread-data`; loading then scales the student)
    OUT/<student>/student.pt2    its method's export view (EnDD: the Dirichlet concentrations)
    OUT/teacher.pt2              the teacher; absent when torch.export cannot trace it (e.g. a
                                 bare callable), with the reason in config.json
    OUT/report.md                the human summary of its evaluation: the teacher, the members and
                                 the student, with any warning
"""

from __future__ import annotations

import json
import platform
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import hydraplus
from hydraplus.config import StudentSpec
from hydraplus.core.modes import evaluating
from hydraplus.engine.distributed import check_world_size
from hydraplus.evaluation import Models, Suite, evaluate
from hydraplus.evaluation.held_out import teacher_student_view
from hydraplus.export.pt2 import export_model
from hydraplus.io import atomic_write_text
from hydraplus.report.choice import losing_students
from hydraplus.report.compare import check_evaluation, evaluation_markdown
from hydraplus.report.distil import StudentWarning, distil_markdown, far_from_teacher

CONFIG = "config.json"
MODEL = "model.pt"
EARLY_STOPPING = "early_stopping.json"
TRAINING = "training.json"
AUTO_LAMBDA = "auto_lambda.json"
EVALUATION = "evaluation.json"
REPORT = "report.md"
DISTIL = "distil"  # the kind of a distil run
STUDENT_PROGRAM = "student.pt2"
TEACHER_PROGRAM = "teacher.pt2"
SAME_ON_RESUME = ("kind", "task", "student", "spec", "seed", "input_shape", "val_fraction")


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


def write_training(folder: Path, seconds: float) -> None:
    """A model folder's training time in seconds."""
    atomic_write_text(Path(folder) / TRAINING, json.dumps({"train_seconds": seconds}, indent=2))


def read_train_seconds(run_dir: Path, names: Sequence[str]) -> dict[str, float]:
    """The training times of the models ``names`` that have one: each model's ``training.json``,
    else (runs from before that file) the run's earlier evaluation, read once."""
    run_dir = Path(run_dir)
    seconds = {name: float(json.loads((run_dir / name / TRAINING).read_text())["train_seconds"])
               for name in names if (run_dir / name / TRAINING).is_file()}
    missing = [name for name in names if name not in seconds]
    if missing and (run_dir / EVALUATION).is_file():
        rows = json.loads((run_dir / EVALUATION).read_text()).get("models", {})
        seconds.update({name: float(rows[name]["train_seconds"]) for name in missing
                        if rows.get(name, {}).get("train_seconds") is not None})
    return seconds


def read_spread_scales(run_dir: Path) -> dict[str, float]:
    """The scale of each spread-scaled row of the run's evaluation (`hydraplus.evaluation.spread`;
    none before one)."""
    path = Path(run_dir) / EVALUATION
    rows = json.loads(path.read_text()).get("models", {}) if path.is_file() else {}
    return {name: float(row["spread_scale"]) for name, row in rows.items() if "spread_scale" in row}


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


# What hydraplus writes beside a run's models (a run's own files, and the reports `compare` and the
# demo write beside runs); figures are PNGs. A model's folder holds at least one of MODEL_MARKERS.
RUN_FILES = frozenset({CONFIG, "evaluation.json", "evaluation.md", "report.md", "teacher.pt2",
                       "metrics.json", "compare.md"})
RUN_DIRS = frozenset({"cache", "export"})
MODEL_MARKERS = (MODEL, "last.ckpt", "log", "student.pt2")


def foreign_entries(path: Path) -> list[Path]:
    """The entries of ``path`` that no hydraplus run wrote (what ``overwrite`` must not delete): any
    file but a run's own and PNG figures, and any folder that is neither a run, nor (inside a run) a
    model's folder, the teacher cache or an export, nor empty."""
    path = Path(path)
    run = _has_run_config(path)
    foreign: list[Path] = []
    for entry in sorted(path.iterdir()):
        if entry.is_file():
            if entry.name not in RUN_FILES and entry.suffix != ".png":
                foreign.append(entry)
        elif entry.is_dir() and _has_run_config(entry):
            foreign += foreign_entries(entry)
        elif not (entry.is_dir() and _run_owned(entry, run)):
            foreign.append(entry)
    return foreign


def _run_owned(folder: Path, in_run: bool) -> bool:
    """Whether a folder that is not a run itself is one a run wrote (or empty)."""
    if not any(folder.iterdir()):
        return True
    return in_run and (folder.name in RUN_DIRS or any((folder / marker).exists() for marker in MODEL_MARKERS))


def prepare_out_dir(path: Path, resume: bool, overwrite: bool) -> Path:
    """Refuse to mix runs: an existing non-empty folder needs ``resume`` or ``overwrite`` and must
    hold a hydraplus run; ``overwrite`` deletes it only when everything in it is the runs' own
    (`foreign_entries`), never a user's files beside them. Creates the folder and checks it can be
    written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output path {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not is_run_folder(path):
            why = ("; --overwrite deletes runs only" if overwrite
                   else "; there is nothing to resume" if resume else "")
            raise ValueError(f"output folder {path} is not empty and holds no hydraplus run (no config.json "
                             f"of one){why}: choose a new or empty folder")
        if overwrite:
            foreign = foreign_entries(path)
            if foreign:
                names = ", ".join(str(entry.relative_to(path)) for entry in foreign[:5])
                more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
                raise ValueError(f"output folder {path} holds files that are not a hydraplus run's "
                                 f"({names}{more}); --overwrite deletes runs only: move them, or choose "
                                 "another folder")
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


def run_folders(path: Path) -> list[Path]:
    """The run itself (it has config.json) or the seed-*/ runs of a train output folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    if (path / CONFIG).is_file():
        return [path]
    seeds = sorted((p.parent for p in path.glob(f"seed-*/{CONFIG}")), key=lambda p: p.name)
    if not seeds:
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json in it or in seed-*/): {path}")
    return seeds


def read_meta(run_dir: Path) -> dict[str, Any]:
    """A run's ``config.json``; a clear one-line error for a folder without one."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json): {run_dir}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"cannot read {path}: not a JSON object")
    return meta


def read_distil_config(run_dir: Path) -> dict[str, Any]:
    """A distil run's ``config.json``; a clear one-line error for any other folder."""
    meta = read_meta(run_dir)
    kind = meta.get("kind")
    if kind != DISTIL:
        raise ValueError(f"{run_dir} is {f'a {kind} run' if kind else 'a run of another kind'}, not a "
                         "distil run (the folder hydraplus.distil(out=...) or `hydraplus distil` writes)")
    return meta


def start_distil_run(folder: Path, spec: StudentSpec, task: str, input_shape: list[int], *, seed: int,
                     precision: str, record: Mapping[str, Any] | None, resume: bool, world_size: int = 1,
                     write: bool = True, val_fraction: float | None = None) -> None:
    """Write a distil run's ``config.json`` as training starts (``record``'s keys first; the run's own
    win); with ``resume`` refuse a folder whose saved run differs in its student, data, seed or world
    size (processes). On several processes each checks and global rank 0 alone (``write``) writes."""
    meta = {**dict(record or {}), "kind": DISTIL, "task": task, "student": spec.name, "method": spec.method,
            "spec": spec.to_dict(), "seed": seed, "precision": precision, "input_shape": input_shape,
            "world_size": world_size, "versions": versions(), "val_fraction": val_fraction}
    meta = json.loads(json.dumps(meta))  # as it reads back
    path = Path(folder) / CONFIG
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        # runs from before the world size was saved trained on one process
        check_world_size(saved.get("world_size", 1), world_size, str(folder))
        changed = [key for key in SAME_ON_RESUME if saved.get(key) != meta[key]]
        if changed:
            raise ValueError(f"cannot resume {folder}: its saved {', '.join(changed)} do not match this "
                             "run's; use a new output folder or --overwrite")
    if write:
        atomic_write_text(path, json.dumps(meta, indent=2))


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def finish_distil_run(folder: Path, student: nn.Module, student_name: str, teacher: nn.Module | None,
                      example: Tensor, finished: Mapping[str, Any]) -> None:
    """Export the student (its method's export view) and the teacher as programs, each checked
    against its module on ``example`` (a batch of two or more inputs), then complete ``config.json``
    with them and ``finished`` (training time, early stopping, member validation). A teacher
    torch.export cannot trace is recorded, not fatal."""
    folder = Path(folder)
    meta = json.loads((folder / CONFIG).read_text())
    program = f"{student_name}/{STUDENT_PROGRAM}"
    with evaluating(student):
        export_model(student, example, folder / program)
    teacher_program: str | None = TEACHER_PROGRAM
    meta.pop("teacher_not_exported", None)
    try:
        if teacher is None:
            raise ValueError("no teacher")
        with evaluating(teacher):
            export_model(teacher, example, folder / TEACHER_PROGRAM)
    except Exception as err:  # whatever torch.export cannot trace: the student is still usable alone
        teacher_program, meta["teacher_not_exported"] = None, _first_line(err)
        (folder / TEACHER_PROGRAM).unlink(missing_ok=True)
    meta.update(programs={"student": program, "teacher": teacher_program}, **finished)
    atomic_write_text(folder / CONFIG, json.dumps(meta, indent=2))


def record_spread_scale(folder: Path, scale: float, data: str) -> str | None:
    """Keep a distil run's fitted spread scale and what it was fitted on (``data``: a file and its
    size) in its ``config.json``: the run's student is then the spread-scaled one
    (`hydraplus.pipeline.distil.load_distilled`). Returns the line its reports show."""
    meta = read_distil_config(Path(folder))
    meta.update(spread_scale=scale, spread_data=data)
    atomic_write_text(Path(folder) / CONFIG, json.dumps(meta, indent=2))
    return spread_scale_text(meta)


def spread_scale_text(meta: Mapping[str, Any]) -> str | None:
    """A distil run's spread scale as its reports show it (None: the student as trained)."""
    if meta.get("spread_scale") is None:
        return None
    return f"{meta['spread_scale']:.4g}: the heads' spread fitted on {meta['spread_data']}"


def write_evaluation(folder: Path, evaluation: dict[str, Any]) -> Path:
    """Write ``evaluation.json`` and ``evaluation.md`` into ``folder`` atomically, and for a teacher
    beside its student (a distil run) also ``report.md``, its human summary; returns the path of
    ``evaluation.md``."""
    folder = Path(folder)
    check_evaluation(evaluation, folder / EVALUATION)
    atomic_write_text(folder / EVALUATION, json.dumps(evaluation, indent=2))
    atomic_write_text(folder / "evaluation.md", evaluation_markdown(evaluation))
    if evaluation["kind"] == DISTIL:
        atomic_write_text(folder / REPORT, distil_markdown(teacher_student_view(evaluation)))
    return folder / "evaluation.md"


def evaluate_into(out: Path, models: Models, suite: Suite, *, seed: int = 0, precision: str = "32",
                  latency_batches: Sequence[int] = (1, 256), device: str = "cpu") -> Path:
    """Evaluate ``models`` with ``suite``, write the evaluation into ``out`` (`write_evaluation`) and
    warn about a student far from its teacher; returns the path of ``evaluation.md``."""
    evaluation = evaluate(models, suite, seed=seed, precision=precision, latency_batches=latency_batches,
                          device=device)
    written = write_evaluation(Path(out), evaluation)
    warn_far_students(evaluation, Path(out))
    return written


def warn_far_students(evaluation: dict[str, Any], run: Path | None = None) -> None:
    """A `StudentWarning` for a distilled student far from its teacher (`far_from_teacher`), or for each
    student of an image run (in the folder ``run``) less accurate than its best member alone
    (`losing_students`)."""
    if evaluation["kind"] == DISTIL:
        warning = far_from_teacher(teacher_student_view(evaluation))
        found = [] if warning is None else [warning]
    else:
        found = losing_students(evaluation, run) if evaluation["kind"] == "image" else []
    for warning in found:
        warnings.warn(StudentWarning(warning), stacklevel=3)
