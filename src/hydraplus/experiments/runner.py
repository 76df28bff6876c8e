"""Run one experiment: train the ensemble, distil every student, evaluate them all.

Run folder layout::

    RUN/config.json            the config as given, run kind (toy / image), seed, data path,
                           versions and the config's warnings
    RUN/ensemble/model.pt      weights (state dict, weights-only loadable)
    RUN/ensemble/last.ckpt     full training state (resume)
    RUN/ensemble/log/metrics.csv  every loss term per epoch
    RUN/<student>/...          the same per student; with early stopping (``patience``) also
                               early_stopping.json: the epoch whose weights model.pt holds
    RUN/cache/                 teacher outputs on the training set (memory-mapped, keyed by
                               a hash of the teacher weights and the data)

On several processes (the config's ``trainer`` section) every process runs all of this; global
rank 0 alone writes the run folder, which must be on a filesystem every process sees.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

import hydraplus
from hydraplus.config import ConfigWarning, ExperimentConfig, StudentSpec, parse_config
from hydraplus.core.augment import Augmentation
from hydraplus.core.checks import (
    check_class_counts,
    check_dataset,
    check_output_dir_writable,
    check_shape,
    output_size,
)
from hydraplus.core.containers import Ensemble
from hydraplus.core.predict import predict
from hydraplus.data.probe import off_data_probe
from hydraplus.data.problem import Problem
from hydraplus.engine import cache
from hydraplus.engine.auto_lambda import teacher_probe
from hydraplus.engine.data import SeededAugment, SeededData, SeededMixup
from hydraplus.engine.distributed import check_batches, check_world_size, is_rank_zero
from hydraplus.engine.early_stopping import EarlyStopping
from hydraplus.engine.modules import DistillModule, EnsembleModule
from hydraplus.engine.progress import RunProgress
from hydraplus.engine.trainer import fit
from hydraplus.experiments.builders import build_ensemble, build_student
from hydraplus.experiments.run_plan import plan_run
from hydraplus.io import atomic_torch_save, atomic_write_text, safe_load
from hydraplus.models.warm_start import init_core_from_member


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


def versions() -> dict[str, str]:
    return {"hydraplus": hydraplus.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def derived_seed(seed: int, name: str) -> int:
    """A stable per-model seed, so each model's initialisation is reproducible on its own."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def as_config(config: ExperimentConfig | dict[str, Any]) -> ExperimentConfig:
    """A parsed config (JSON dicts are parsed here, once)."""
    return config if isinstance(config, ExperimentConfig) else parse_config(config)


def load_problem(config: ExperimentConfig, seed: int, data_path: str | Path | None = None,
                 ood_path: str | Path | None = None) -> Problem:
    """The config's data: a toy problem by name, or an image source (``data_path`` replaces its path,
    ``ood_path`` that of ``data.ood``, an ``npz`` file when the config has no ``data.ood``)."""
    if config.kind == "image":
        from hydraplus.data.images import load_image_problem

        settings = config.data.as_dict()
        if ood_path is not None:
            settings["ood"] = {**settings.get("ood", {"name": "npz"}), "path": str(ood_path)}
        return load_image_problem(settings, seed, path=data_path)
    if data_path is not None or ood_path is not None:
        raise ValueError(f"--data and --ood-data apply to image configs only; {config.name} uses toy data")
    from hydraplus.data.toy import make_toy

    return make_toy(config.data.name, seed=config.data.options.get("seed", seed))


def seeded_augment(augmentation: Augmentation | None, problem: Problem, seed: int
                   ) -> SeededAugment | None:
    """The engine's augmentation for ``problem`` (image data only), or None."""
    if augmentation is None:
        return None
    normalization = getattr(problem, "normalization", None)
    if normalization is None:
        raise ValueError(f"augment applies to image data only; {problem.name} is not an image data set")
    return SeededAugment(augmentation, seed, normalization.black())


def train_ensemble(config: ExperimentConfig, problem: Problem, folder: Path, seed: int, *,
                   progress: bool | RunProgress = True, accelerator: str = "cpu", resume: bool = False,
                   checkpoint_every: int = 1) -> tuple[Ensemble, float, int]:
    """Train N members (batched, own orders); returns the ensemble, seconds, skipped steps."""
    folder = Path(folder)
    settings = config.ensemble
    check_dataset(problem.x_train, problem.y_train, config.task, problem.num_outputs, "train")
    check_batches(len(problem.x_train), settings.batch_size, config.trainer.world_size, "ensemble")
    L.seed_everything(derived_seed(seed, "ensemble"), verbose=False)
    ensemble = build_ensemble(config, _layout(accelerator))
    check_class_counts(problem.num_outputs, teacher=output_size(ensemble, problem.x_train, "the ensemble"),
                       task=config.task)
    augment = seeded_augment(settings.augmentation, problem, derived_seed(seed, "ensemble/augment"))
    module = EnsembleModule(ensemble, config.task, settings.lr, settings.weight_decay,
                            settings.epochs, augment=augment, label_smoothing=settings.label_smoothing)
    data = SeededData((problem.x_train, problem.y_train), settings.batch_size, seed, streams=ensemble.size,
                      names=("train inputs", "train targets"))
    start = time.perf_counter()
    trainer = fit(module, data, folder=folder, label=f"{problem.name}/ensemble-{ensemble.size}",
                  epochs=settings.epochs, progress=progress, accelerator=accelerator, resume=resume,
                  checkpoint_every=checkpoint_every, precision=config.precision, **asdict(config.trainer))
    seconds = time.perf_counter() - start
    ensemble.cpu()
    if trainer.is_global_zero:
        atomic_torch_save(ensemble.state_dict(), folder / "model.pt")
    return ensemble, seconds, module.skipped_steps


def train_student(config: ExperimentConfig, spec: StudentSpec, problem: Problem,
                  teacher_outputs: torch.Tensor | cache.TeacherOutputs | None, folder: Path, seed: int, *,
                  teacher: Ensemble | None = None, progress: bool | RunProgress = True,
                  accelerator: str = "cpu", resume: bool = False,
                  checkpoint_every: int = 1,
                  teacher_val: torch.Tensor | None = None) -> tuple[nn.Module, float, int]:
    """Distil the teacher into the student of ``spec``.

    Without augmentation the student learns from ``teacher_outputs`` (one row per training
    example; a `cache.TeacherOutputs` is computed in the fit, by global rank 0 only); with
    ``spec.augment`` the ``teacher`` runs on every augmented batch. With ``spec.patience`` the
    student stops early on its validation KL to the teacher (``teacher_val``: the teacher's outputs
    on the validation inputs, else computed here) and ends with its best epoch's weights, recorded in
    ``early_stopping.json``.
    """
    folder = Path(folder)
    check_dataset(problem.x_train, problem.y_train, config.task, problem.num_outputs, "train")
    check_batches(len(problem.x_train), spec.batch_size, config.trainer.world_size, f"student {spec.name}")
    augment = seeded_augment(spec.augment, problem, derived_seed(seed, spec.name + "/augment"))
    mixup = (None if spec.mixup is None
             else SeededMixup(spec.mixup, derived_seed(seed, spec.name + "/mixup"), problem.num_outputs))
    extra = None
    if augment is None and mixup is None:
        if teacher_outputs is None:
            raise ValueError(f"student {spec.name}: needs the teacher's cached outputs")
        names: tuple[str, ...] = ("train inputs", "train targets")
        if isinstance(teacher_outputs, cache.TeacherOutputs):
            teacher_size = output_size(teacher_outputs.model, problem.x_train, "the teacher")
            tensors, extra = (problem.x_train, problem.y_train), teacher_outputs
        else:
            check_shape(teacher_outputs, [len(problem.x_train), None, None], "teacher outputs")
            teacher_size = teacher_outputs.shape[-1]
            tensors = (problem.x_train, problem.y_train, teacher_outputs)
            names = (*names, "teacher outputs")
    else:
        if teacher is None:
            raise ValueError(f"student {spec.name}: augmented or mixed-up distillation needs the "
                             "teacher model")
        teacher_size = output_size(teacher, problem.x_train, "the teacher")
        tensors, names = (problem.x_train, problem.y_train), ("train inputs", "train targets")
    L.seed_everything(derived_seed(seed, spec.name), verbose=False)
    student = build_student(config, spec, _layout(accelerator))
    if spec.core_init == "member":
        if teacher is None:
            raise ValueError(f"student {spec.name}: core_init 'member' needs the teacher model")
        init_core_from_member(student.core, teacher.member_state_dict(0))
    check_class_counts(problem.num_outputs, teacher=teacher_size,
                       student=output_size(student, problem.x_train, f"student {spec.name}"),
                       task=config.task)
    probe = None
    if spec.lam.auto:
        if teacher is None:
            raise ValueError(f"student {spec.name}: an automatic lambda needs the teacher model")
        probe = teacher_probe(teacher, off_data_probe(problem.x_train, seed=derived_seed(seed, "probe")),
                              config.task, train=problem.x_train, seed=derived_seed(seed, "guard"))
    module = DistillModule(student, spec.method, config.task, spec,
                           teacher=None if augment is None and mixup is None else teacher, augment=augment,
                           probe=probe, mixup=mixup)
    data = SeededData(tensors, spec.batch_size, derived_seed(seed, spec.name + "/data"), names=names,
                      extra=extra)
    stopping = _early_stopping(config, spec, problem, teacher, teacher_val)
    start = time.perf_counter()
    trainer = fit(module, data, folder=folder, label=f"{problem.name}/{spec.name}", epochs=spec.epochs,
                  progress=progress, accelerator=accelerator, resume=resume,
                  checkpoint_every=checkpoint_every, precision=config.precision,
                  callbacks=[] if stopping is None else [stopping], **asdict(config.trainer))
    seconds = time.perf_counter() - start
    student.cpu()
    if teacher is not None:
        teacher.cpu()
    if not trainer.is_global_zero:
        return student, seconds, module.skipped_steps
    atomic_torch_save(student.state_dict(), folder / "model.pt")
    if stopping is not None:
        atomic_write_text(folder / EARLY_STOPPING, json.dumps(stopping.record(spec.epochs), indent=2))
    if module.auto_lambda is not None:
        atomic_write_text(folder / "auto_lambda.json", json.dumps({
            "start": spec.lam.value, "final": module.auto_lambda.value,
            "target_epistemic": module.auto_lambda.target,
            "statistic": "geometric mean of the epistemic uncertainty over the probe inputs",
            "probe": "off-data points made from the training inputs (hydraplus.data.probe)",
            "per_epoch": "log/metrics.csv: train/lambda"}, indent=2))
    return student, seconds, module.skipped_steps


EARLY_STOPPING = "early_stopping.json"


def _early_stopping(config: ExperimentConfig, spec: StudentSpec, problem: Problem, teacher: Ensemble | None,
                    teacher_val: torch.Tensor | None) -> EarlyStopping | None:
    """The early-stopping callback of a student with ``patience`` (None without)."""
    if spec.patience is None:
        return None
    if len(problem.x_val) < 2:
        raise ValueError(f"student {spec.name}: early stopping (patience) needs a validation split of at "
                         f"least 2 inputs; {problem.name} has {len(problem.x_val)}")
    if teacher_val is None:
        if teacher is None:
            raise ValueError(f"student {spec.name}: early stopping needs the teacher "
                             "(or its validation outputs)")
        teacher_val = predict(teacher, problem.x_val, precision=config.precision)
    return EarlyStopping(problem.x_val, teacher_val, config.task, spec.patience, precision=config.precision)


def read_early_stopping(folder: Path) -> dict[str, Any] | None:
    """A student folder's early-stopping record, or None (trained for all its epochs)."""
    path = Path(folder) / EARLY_STOPPING
    return json.loads(path.read_text()) if path.is_file() else None


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
        progress = plan_run(config, problem, _layout(accelerator), accelerator)
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


def _layout(accelerator: str) -> bool | None:
    """Stacked members/heads on accelerators; the CPU-measured automatic choice otherwise."""
    return None if accelerator == "cpu" else True


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
    state = safe_load(run_dir / "ensemble" / "model.pt")
    ensemble = build_ensemble(config, _saved_layout(state))
    ensemble.load_state_dict(state)
    models = TrainedModels(ensemble)
    for spec in config.students:
        state = safe_load(run_dir / spec.name / "model.pt")
        student = build_student(config, spec, _saved_layout(state))
        student.load_state_dict(state)
        models.students[spec.name], models.specs[spec.name] = student, spec
        record = read_early_stopping(run_dir / spec.name)
        if record is not None:
            models.early_stopping[spec.name] = record
    return meta, config, models
