"""A config run: train the ensemble and every student of a config (`hydraplus.pipeline.train`), and
rebuild them from the run folder.

Its ``config.json`` (`hydraplus.pipeline.run_folder`) holds the config as given, the run kind (toy /
image), seed, data path, versions and the config's warnings; ``ensemble/`` and one folder per student
hold the models, ``cache/`` the teacher's outputs on the training set (memory-mapped, keyed by a hash
of the teacher weights and the data).

On several processes (the config's ``trainer`` section) every process runs all of this; global
rank 0 alone writes the run folder, which must be on a filesystem every process sees.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from hydraplus.config import ConfigWarning, ExperimentConfig, StudentSpec, parse_config
from hydraplus.core.checks import (
    check_output_dir_writable,
)
from hydraplus.core.containers import Ensemble
from hydraplus.core.predict import predict
from hydraplus.data.images import load_image_problem
from hydraplus.data.problem import Problem
from hydraplus.data.toy import make_toy
from hydraplus.engine import cache
from hydraplus.engine.distributed import check_world_size, is_rank_zero
from hydraplus.engine.progress import RunProgress
from hydraplus.evaluation import ImageSuite, Models, Suite, ToySuite
from hydraplus.io import atomic_write_text, safe_load
from hydraplus.models.warm_start import init_core_from_member
from hydraplus.pipeline.builders import build_ensemble, build_members, build_student
from hydraplus.pipeline.run_folder import MODEL, read_early_stopping, read_train_seconds, versions
from hydraplus.pipeline.run_plan import plan_run
from hydraplus.pipeline.train import (
    StudentData,
    StudentSeeds,
    derived_seed,
    distil_student,
    layout,
    train_ensemble,
)


@dataclass
class TrainedModels:
    """The teacher and the students of one run, with their specs and training times."""

    ensemble: Ensemble
    students: dict[str, nn.Module] = field(default_factory=dict)
    specs: dict[str, StudentSpec] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)
    skipped_steps: dict[str, int] = field(default_factory=dict)
    early_stopping: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stopped student

    def all(self) -> dict[str, nn.Module]:
        return {"ensemble": self.ensemble, **self.students}


def evaluation_models(config: ExperimentConfig, trained: TrainedModels) -> Models:
    """A config run's models as an evaluation takes them: the ensemble (its members alone too, for
    their cost) and the students, with their training times, early stopping and settings."""
    return Models(trained.all(), "ensemble", members=build_members(config, trained.ensemble),
                  train_seconds=dict(trained.train_seconds), early_stopping=dict(trained.early_stopping),
                  specs={name: spec.to_dict() for name, spec in trained.specs.items()})


def suite_for(config: ExperimentConfig, problem: Problem, shifts: bool = True) -> Suite:
    """The suite that evaluates a config run on ``problem``: the toy suite, or the image suite (with
    the dataset shifts unless ``shifts`` is False)."""
    if config.kind == "toy":
        return ToySuite(problem)  # type: ignore[arg-type]
    return ImageSuite(problem, shifts)  # type: ignore[arg-type]


def as_config(config: ExperimentConfig | dict[str, Any]) -> ExperimentConfig:
    """A parsed config (JSON dicts are parsed here, once)."""
    return config if isinstance(config, ExperimentConfig) else parse_config(config)


def load_problem(config: ExperimentConfig, seed: int, data_path: str | Path | None = None,
                 ood_path: str | Path | None = None) -> Problem:
    """The config's data: a toy problem by name, or an image source (``data_path`` replaces its path,
    ``ood_path`` that of ``data.ood``, an ``npz`` file when the config has no ``data.ood``)."""
    if config.kind == "image":
        settings = config.data.as_dict()
        if ood_path is not None:
            settings["ood"] = {**settings.get("ood", {"name": "npz"}), "path": str(ood_path)}
        return load_image_problem(settings, seed, path=data_path)
    if data_path is not None or ood_path is not None:
        raise ValueError(f"--data and --ood-data apply to image configs only; {config.name} uses toy data")
    return make_toy(config.data.name, seed=config.data.options.get("seed", seed))


def train_student(config: ExperimentConfig, spec: StudentSpec, problem: Problem,
                  teacher_outputs: torch.Tensor | cache.TeacherOutputs | None, folder: Path, seed: int, *,
                  teacher: Ensemble | None = None, progress: bool | RunProgress = True,
                  accelerator: str = "cpu", resume: bool = False,
                  checkpoint_every: int = 1,
                  teacher_val: torch.Tensor | None = None) -> tuple[nn.Module, float, int]:
    """Distil the teacher into the config's student ``spec`` (`distil_student`: the one training path).

    Without augmentation the student learns from ``teacher_outputs`` (one row per training
    example; a `cache.TeacherOutputs` is computed in the fit, by global rank 0 only); with
    ``spec.augment`` the ``teacher`` runs on every augmented batch. With ``spec.patience`` the
    student stops early on its validation KL to the teacher (``teacher_val``: the teacher's outputs
    on the validation inputs, else computed here) and ends with its best epoch's weights, recorded in
    ``early_stopping.json``.
    """
    normalization = getattr(problem, "normalization", None)
    data = StudentData(problem.x_train, problem.y_train, problem.num_outputs, problem.name,
                       teacher_outputs=teacher_outputs,
                       fill=None if normalization is None else normalization.black(),
                       x_val=problem.x_val, teacher_val=teacher_val)
    seeds = StudentSeeds(data=derived_seed(seed, spec.name + "/data"),
                         augment=derived_seed(seed, spec.name + "/augment"),
                         probe=derived_seed(seed, "probe"), guard=derived_seed(seed, "guard"),
                         mixup=derived_seed(seed, spec.name + "/mixup"))
    L.seed_everything(derived_seed(seed, spec.name), verbose=False)
    student = build_student(config, spec, layout(accelerator))
    if spec.core_init == "member":
        if teacher is None:
            raise ValueError(f"student {spec.name}: core_init 'member' needs the teacher model")
        init_core_from_member(student.core, teacher.member_state_dict(0))
    trained = distil_student(student, spec, config.task, data, folder, teacher=teacher, seeds=seeds,
                             label=f"{problem.name}/{spec.name}", name=f"student {spec.name}",
                             trainer=config.trainer, precision=config.precision, progress=progress,
                             accelerator=accelerator, resume=resume, checkpoint_every=checkpoint_every)
    return trained.model, trained.seconds, trained.skipped_steps


def run_experiment(config: ExperimentConfig | dict[str, Any], run_dir: Path, seed: int = 0, *,
                   progress: bool | RunProgress = True,
                   accelerator: str = "cpu", resume: bool = False,
                   checkpoint_every: int = 1,
                   data_path: str | Path | None = None,
                   ood_path: str | Path | None = None) -> tuple[Problem, TrainedModels]:
    """Train the ensemble and every student of ``config`` into ``run_dir``.

    ``last.ckpt`` of each model is updated every ``checkpoint_every`` epochs; with ``resume``
    each model continues from its own ``last.ckpt`` (if any) and ends as if never stopped, on the
    world size it was started with. Every process returns the same trained models.
    ``data_path`` and ``ood_path`` replace the config's data paths (see `load_problem`).
    """
    config = as_config(config)
    rank_zero = is_rank_zero(config.trainer.devices, config.trainer.num_nodes)
    run_dir = check_output_dir_writable(run_dir) if rank_zero else Path(run_dir)
    if rank_zero:  # one copy of each warning, not one per process
        for warning in config.warnings:
            warnings.warn(ConfigWarning(f"{config.name}: {warning}"), stacklevel=2)
    problem = load_problem(config, seed, data_path, ood_path)
    meta: dict[str, Any] = {"config": config.raw, "kind": config.kind, "seed": seed,
                            "data_path": None if data_path is None else str(data_path),
                            "versions": versions(), "warnings": list(config.warnings),
                            "world_size": config.trainer.world_size}
    if ood_path is not None:  # absent otherwise, as in runs from before --ood-data
        meta["ood_path"] = str(ood_path)
    if config.kind == "image":  # to normalise unseen test files like the training data
        meta["normalization"] = {"mean": list(problem.normalization.mean),
                                 "std": list(problem.normalization.std),
                                 "image_shape": list(problem.x_test_raw.shape[1:])}
    if resume:
        _check_same_run(run_dir / "config.json", meta)
    if rank_zero:
        atomic_write_text(run_dir / "config.json", json.dumps(meta, indent=2))
    if progress is True and rank_zero:  # the run's first line: its models and their estimated time
        progress = plan_run(config, problem, layout(accelerator), accelerator)
        progress.announce()
    ensemble, seconds, skipped = train_ensemble(
        config, problem, run_dir / "ensemble", seed, progress=progress,
        accelerator=accelerator, resume=resume, checkpoint_every=checkpoint_every)
    models = TrainedModels(ensemble, train_seconds={"ensemble": seconds},
                           skipped_steps={"ensemble": skipped})
    specs = config.students
    teacher_outputs = None
    if any(spec.augment is None for spec in specs):  # augmented students run the teacher instead
        teacher_outputs = cache.TeacherOutputs(ensemble, problem.x_train, run_dir / "cache")
    teacher_val = None  # the teacher's validation outputs, once for every early-stopping student
    if any(spec.patience is not None for spec in specs) and len(problem.x_val):
        teacher_val = predict(ensemble, problem.x_val, precision=config.precision)
    for spec in specs:
        student, seconds, skipped = train_student(
            config, spec, problem, teacher_outputs, run_dir / spec.name, seed, teacher=ensemble,
            progress=progress, accelerator=accelerator, resume=resume,
            checkpoint_every=checkpoint_every, teacher_val=teacher_val)
        models.students[spec.name] = student
        models.specs[spec.name] = spec
        models.train_seconds[spec.name] = seconds
        models.skipped_steps[spec.name] = skipped
        record = read_early_stopping(run_dir / spec.name) if rank_zero else None
        if record is not None:
            models.early_stopping[spec.name] = record
    return problem, models


def _check_same_run(path: Path, meta: dict[str, Any]) -> None:
    """Refuse to resume a run folder that was started with another config, seed, data or world size
    (its trainer section may otherwise change: the same world size on other devices and nodes)."""
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    # runs from before the world size was saved trained on one process
    check_world_size(saved.get("world_size", 1), meta["world_size"], str(path.parent))
    saved, meta = _trainer_aside(saved), _trainer_aside(meta)
    changed = [key for key in ("config", "seed", "data_path", "ood_path") if saved.get(key) != meta.get(key)]
    if changed:
        raise ValueError(
            f"cannot resume {path.parent}: its saved {', '.join(changed)} do not match this run's; "
            "use a new output folder or --overwrite"
        )


def _trainer_aside(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its config's trainer section left out."""
    config = {key: value for key, value in meta.get("config", {}).items() if key != "trainer"}
    return {**meta, "config": config}


def _saved_layout(state: dict[str, torch.Tensor]) -> bool:
    """Whether a saved state dict holds stacked (True) or looped members/heads."""
    return any(".stacked." in key for key in state)


def read_run(run_dir: Path) -> tuple[dict[str, Any], ExperimentConfig]:
    """A run folder's saved metadata (``config``, ``kind``, ``seed``, ``data_path``, ``ood_path``
    when given; ``normalization`` for image runs) and its parsed config."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "config.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json): {run_dir}")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") == "distil":
        raise ValueError(f"{run_dir} is a distil run (the folder hydraplus.distil writes), not a train run; "
                         "load it with hydraplus.load_distilled")
    config = parse_config(meta["config"])
    meta.setdefault("kind", config.kind)  # runs from before the kind was saved
    return meta, config


def load_trained(run_dir: Path) -> tuple[dict[str, Any], ExperimentConfig, TrainedModels]:
    """Rebuild every model of a finished run from its config and weights-only files."""
    run_dir = Path(run_dir)
    meta, config = read_run(run_dir)
    state = safe_load(run_dir / "ensemble" / MODEL)
    ensemble = build_ensemble(config, _saved_layout(state))
    ensemble.load_state_dict(state)
    models = TrainedModels(ensemble)
    for spec in config.students:
        state = safe_load(run_dir / spec.name / MODEL)
        student = build_student(config, spec, _saved_layout(state))
        student.load_state_dict(state)
        models.students[spec.name], models.specs[spec.name] = student, spec
        record = read_early_stopping(run_dir / spec.name)
        if record is not None:
            models.early_stopping[spec.name] = record
    models.train_seconds.update(read_train_seconds(run_dir, ["ensemble", *models.students]))
    return meta, config, models
