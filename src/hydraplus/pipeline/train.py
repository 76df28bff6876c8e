"""The one training path: `train_ensemble` trains the members, `distil_student` every student of a
config run (`hydraplus.pipeline.config_run`) and of `hydraplus.distil` (`hydraplus.pipeline.distil`).

Whoever calls, a student gets the same augmentation, automatic lambda (logged to
``auto_lambda.json``), teacher cache, early stopping (recorded in ``early_stopping.json``), processes
and precision; the callers differ only in how they build the student and which seeds and data they
give.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from hydraplus.config import ExperimentConfig, StudentSpec, TrainerSettings
from hydraplus.core.augment import Augmentation
from hydraplus.core.checks import check_class_counts, check_dataset, check_shape, output_size
from hydraplus.core.containers import Ensemble
from hydraplus.core.predict import predict
from hydraplus.data.probe import off_data_probe
from hydraplus.data.problem import Problem
from hydraplus.engine import cache
from hydraplus.engine.auto_lambda import ProbeSet, teacher_probe
from hydraplus.engine.data import SeededAugment, SeededData, SeededMixup
from hydraplus.engine.distributed import check_batches
from hydraplus.engine.early_stopping import EarlyStopping
from hydraplus.engine.modules import DistillModule, EnsembleModule
from hydraplus.engine.progress import RunProgress
from hydraplus.engine.trainer import fit
from hydraplus.io import atomic_torch_save
from hydraplus.pipeline.builders import build_ensemble
from hydraplus.pipeline.run_folder import MODEL, write_auto_lambda, write_early_stopping, write_training

OFF_DATA_PROBE = "off-data points made from the training inputs (hydraplus.data.probe)"


def derived_seed(seed: int, name: str) -> int:
    """A stable per-model seed, so each model's initialisation is reproducible on its own."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def layout(accelerator: str) -> bool | None:
    """Stacked members/heads on accelerators; the CPU-measured automatic choice otherwise."""
    return None if accelerator == "cpu" else True


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
    ensemble = build_ensemble(config, layout(accelerator))
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
        atomic_torch_save(ensemble.state_dict(), folder / MODEL)
        write_training(folder, seconds)
    return ensemble, seconds, module.skipped_steps


@dataclass(frozen=True)
class StudentSeeds:
    """The seeds of one student's training: its batch order, its augmentation's and mixup's choices,
    the off-data probe of the automatic lambda and the guard's sample of inputs."""

    data: int
    augment: int
    probe: int
    guard: int
    mixup: int


@dataclass
class StudentData:
    """What a student learns from: the training inputs and targets (``classes``: their number, or 2
    for regression), the teacher's outputs on them (a tensor, or a `cache.TeacherOutputs` computed in
    the fit) unless the student is augmented (the teacher then runs on every batch), the validation
    inputs of early stopping (with the teacher's outputs on them, else computed here), and the
    automatic lambda's probe inputs (default: off-data points made from the training inputs) and
    guard inputs (default: the training inputs)."""

    x: Tensor
    y: Tensor
    classes: int
    name: str  # the data's name in messages
    teacher_outputs: Tensor | cache.TeacherOutputs | None = None
    fill: tuple[float, ...] | float | None = None  # augmentation's border value; None: not images
    x_val: Tensor | None = None
    teacher_val: Tensor | None = None
    probe: Tensor | None = None
    probe_source: str = OFF_DATA_PROBE
    guard: Tensor | None = None
    probe_set: ProbeSet | None = None  # made by `lambda_probe` already (before any file was written)


def lambda_probe(spec: StudentSpec, task: str, data: StudentData, teacher: nn.Module | None,
                 seeds: StudentSeeds, name: str) -> ProbeSet | None:
    """The automatic lambda's probe set: the teacher's typical epistemic uncertainty on the probe
    inputs, and its predictions on the guard inputs (None for a fixed lambda)."""
    if not spec.lam.auto:
        return None
    if teacher is None:
        raise ValueError(f"{name}: an automatic lambda needs the teacher model")
    inputs = off_data_probe(data.x, seed=seeds.probe) if data.probe is None else data.probe
    return teacher_probe(teacher, inputs, task, train=data.x if data.guard is None else data.guard,
                         seed=seeds.guard)


@dataclass
class TrainedStudent:
    """A trained student (on the CPU) with its training time, skipped steps and what early stopping
    and the automatic lambda decided (None without them)."""

    model: nn.Module
    seconds: float
    skipped_steps: int
    early_stopping: dict[str, Any] | None = None
    auto_lambda: dict[str, Any] | None = None
    global_zero: bool = True  # whether this process wrote the files (global rank 0)


def distil_student(student: nn.Module, spec: StudentSpec, task: str, data: StudentData, folder: Path, *,
                   teacher: nn.Module | None, seeds: StudentSeeds, label: str, name: str,
                   trainer: TrainerSettings | None = None, precision: str = "32",
                   progress: bool | RunProgress = True, accelerator: str = "cpu", resume: bool = False,
                   checkpoint_every: int = 1) -> TrainedStudent:
    """Distil ``teacher`` into ``student`` (built and seeded by the caller) with ``spec``'s method.

    Without ``spec.augment`` and ``spec.mixup`` the student learns from ``data.teacher_outputs``;
    with either the ``teacher`` runs on every augmented or mixed batch. With ``spec.lam.auto`` the
    teacher's epistemic uncertainty on the probe inputs is the target (`hydraplus.engine.auto_lambda`). With
    ``spec.patience`` the student stops early on its validation KL to the teacher and ends with its
    best epoch's weights. Global rank 0 writes ``model.pt``, ``early_stopping.json`` and
    ``auto_lambda.json`` into ``folder``. ``name`` names the student in errors (``"student hydra+-20"``).
    """
    folder, trainer = Path(folder), trainer or TrainerSettings()
    x, y = data.x, data.y
    check_dataset(x, y, task, data.classes, "train")
    check_batches(len(x), spec.batch_size, trainer.world_size, name)
    augment = _augment(spec, data, seeds.augment)
    mixup = None if spec.mixup is None else SeededMixup(spec.mixup, seeds.mixup, data.classes)
    extra = None
    tensors: tuple[Tensor, ...] = (x, y)
    names: tuple[str, ...] = ("train inputs", "train targets")
    if augment is None and mixup is None:
        outputs = data.teacher_outputs
        if outputs is None:
            raise ValueError(f"{name}: needs the teacher's cached outputs")
        if isinstance(outputs, cache.TeacherOutputs):
            teacher_size = output_size(outputs.model, x, "the teacher")
            extra = outputs
        else:
            check_shape(outputs, [len(x), None, None], "teacher outputs")
            teacher_size = outputs.shape[-1]
            tensors, names = (x, y, outputs), (*names, "teacher outputs")
    else:
        if teacher is None:
            raise ValueError(f"{name}: augmented or mixed-up distillation needs the teacher model")
        teacher_size = output_size(teacher, x, "the teacher")
    check_class_counts(data.classes, teacher=teacher_size, student=output_size(student, x, name), task=task)
    probe = data.probe_set
    if probe is None:
        probe = lambda_probe(spec, task, data, teacher, seeds, name)
    module = DistillModule(student, spec.method, task, spec,
                           teacher=None if augment is None and mixup is None else teacher, augment=augment,
                           probe=probe, mixup=mixup)
    batches = SeededData(tensors, spec.batch_size, seeds.data, names=names, extra=extra)
    stopping = _early_stopping(spec, task, data, teacher, precision, name)
    start = time.perf_counter()
    fitted = fit(module, batches, folder=folder, label=label, epochs=spec.epochs, progress=progress,
                 accelerator=accelerator, resume=resume, checkpoint_every=checkpoint_every,
                 precision=precision, callbacks=[] if stopping is None else [stopping], **asdict(trainer))
    seconds = time.perf_counter() - start
    student.cpu()
    if teacher is not None:
        teacher.cpu()
    result = TrainedStudent(student, seconds, module.skipped_steps,
                            None if stopping is None else stopping.record(spec.epochs),
                            global_zero=fitted.is_global_zero)
    if module.auto_lambda is not None:
        result.auto_lambda = {
            "start": spec.lam.value, "final": module.auto_lambda.value,
            "target_epistemic": module.auto_lambda.target,
            "statistic": "geometric mean of the epistemic uncertainty over the probe inputs",
            "probe": data.probe_source, "per_epoch": "log/metrics.csv: train/lambda",
            "diversity_phase": module.phase_start > 0, "diversity_epochs": module.extra_epochs,
            **module.selection.summary()}
    if fitted.is_global_zero:
        atomic_torch_save(student.state_dict(), folder / MODEL)
        write_training(folder, seconds)
        if result.early_stopping is not None:
            write_early_stopping(folder, result.early_stopping)
        if result.auto_lambda is not None:
            write_auto_lambda(folder, result.auto_lambda)
    return result


def _augment(spec: StudentSpec, data: StudentData, seed: int) -> SeededAugment | None:
    """The student's augmentation (image data only), or None."""
    if spec.augment is None:
        return None
    if data.fill is None:
        raise ValueError(f"augment applies to image data only; {data.name} is not an image data set")
    return SeededAugment(spec.augment, seed, data.fill)


def _early_stopping(spec: StudentSpec, task: str, data: StudentData, teacher: nn.Module | None,
                    precision: str, name: str) -> EarlyStopping | None:
    """The early-stopping callback of a student with ``patience`` (None without)."""
    if spec.patience is None:
        return None
    x_val = data.x_val if data.x_val is not None else torch.empty(0)
    if len(x_val) < 2:
        raise ValueError(f"{name}: early stopping (patience) needs a validation split of at "
                         f"least 2 inputs; {data.name} has {len(x_val)}")
    teacher_val = data.teacher_val
    if teacher_val is None:
        if teacher is None:
            raise ValueError(f"{name}: early stopping needs the teacher (or its validation outputs)")
        teacher_val = predict(teacher, x_val, precision=precision)
    return EarlyStopping(x_val, teacher_val, task, spec.patience, precision=precision)
