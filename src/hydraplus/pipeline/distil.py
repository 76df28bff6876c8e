"""`hydraplus.distil`: distil any trained ensemble into a student, from Python, in one call.

The teacher is a list of trained modules (any architectures with the same number of outputs),
an `Ensemble`, a hydraplus run folder, or one module or callable running every member; its
outputs are read in hydraplus' convention or refused (`hydraplus.inputs.contracts`). The data is
``(x, y)`` tensors or arrays, a `Dataset`, a `DataLoader` or an ``.npz`` file. Without a
``student``, Hydra's student is cut from the teacher's first member (`hydraplus.models.zoo`:
timm's convention, its children in order, or its torch.fx / torch.export graph): what runs
before ``split`` (a module path; by default the block holding the final layer) becomes the
shared core, starting from the member's weights, and M freshly initialised copies of the rest
become the heads.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from hydraplus.config import ConfigError, StudentDefaults, StudentSpec, TrainerSettings, resolve_student
from hydraplus.core.checks import check_dataset, check_inputs_like
from hydraplus.core.containers import Ensemble
from hydraplus.core.fidelity import fidelity
from hydraplus.core.memory_format import has_conv, use_channels_last
from hydraplus.core.predict import predict
from hydraplus.core.spread import SpreadScaled, fit_spread_scale
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty
from hydraplus.engine import cache
from hydraplus.engine.distributed import check_batches, is_rank_zero, process_rank
from hydraplus.engine.progress import RunProgress
from hydraplus.evaluation import HeldOutSuite, Models, evaluate
from hydraplus.evaluation.held_out import teacher_student_view
from hydraplus.evaluation.members import member_scores
from hydraplus.evaluation.rows import laid_out, test_groups
from hydraplus.export.cards import export_with_card
from hydraplus.export.onnx import traceable
from hydraplus.inputs.arrays import as_tensors, ood_inputs
from hydraplus.inputs.contracts import (
    CallableTeacher,
    ContractNote,
    Members,
    ReadTeacher,
    Selector,
    check_members,
    deep_ensemble_members,
    pick,
    read_kind,
    read_targets,
    read_teacher,
)
from hydraplus.inputs.teachers import TeacherFiles
from hydraplus.methods import get_method
from hydraplus.metrics import section
from hydraplus.models.zoo import STUDENT_FORMS, Split, cut_member, fresh_copy, with_outputs
from hydraplus.pipeline.config_run import load_trained
from hydraplus.pipeline.programs import load_program
from hydraplus.pipeline.run_folder import (
    finish_distil_run,
    prepare_out_dir,
    read_distil_config,
    start_distil_run,
    versions,
    warn_far_students,
    write_evaluation,
)
from hydraplus.pipeline.run_plan import plan_distil
from hydraplus.pipeline.train import (
    OFF_DATA_PROBE,
    StudentData,
    StudentSeeds,
    distil_student,
    lambda_probe,
)
from hydraplus.report.distil import StudentWarning, far_from_teacher
from hydraplus.runtime import flushing_denormals, keep_allocator_memory


def as_teacher(teacher: Any, output: Selector = None) -> nn.Module:
    """The teacher as a module: a `Members` of a list of modules or files, or the module as given.

    A path is a hydraplus run folder, or a ``torch.export`` program (``.pt2``) or TorchScript
    file; a list of such files gives the members (each file ``[B, D]``, or ``[B, N, D]``).
    torch-uncertainty's deep ensembles become the `Members` they hold. ``output`` picks the
    members' predictions from tuple, dict or object outputs (`contracts.pick`).
    """
    if isinstance(teacher, str | Path):
        if Path(teacher).is_dir():  # a config run's trained ensemble
            return load_trained(Path(teacher))[2].ensemble
        return TeacherFiles([Path(teacher)], output)
    if isinstance(teacher, Ensemble):
        return teacher
    if isinstance(teacher, list | tuple):
        if teacher and all(isinstance(t, str | Path) for t in teacher):
            return TeacherFiles([Path(t) for t in teacher], output)
        return Members(teacher, output)
    if isinstance(teacher, nn.Module) and (held := deep_ensemble_members(teacher)) is not None:
        return Members(held, output)
    if isinstance(teacher, nn.Module) or callable(teacher):
        return teacher if isinstance(teacher, nn.Module) else CallableTeacher(teacher)
    raise TypeError(f"teacher must be a list of nn.Modules, an Ensemble, a run folder or a callable "
                    f"returning [B, N, D], got {type(teacher).__name__}")


# --- cutting a member into core and heads ----------------------------------------------------


def split_member(member: nn.Module, split: Split, example: Tensor, output: Selector = None
                 ) -> tuple[nn.Module, nn.Module]:
    """``(core, head)`` cut from ``member`` (`hydraplus.models.zoo.cut_member`: timm's convention,
    its children in order, or its torch.fx / torch.export graph), checked on ``example`` against
    the member's predictions (its output, or the part of it ``output`` picks, as the teacher reads
    it: `contracts.pick`). ``split`` is None, a child's index, or the module path where the heads
    start."""
    said = {"the first member"}  # the teacher has said how its members' outputs are read

    def predictions(out: Any) -> Tensor:
        return pick(out, output, "the first member", said)

    core, head, _ = cut_member(member, split, example, predictions)
    return core, head


# --- the result --------------------------------------------------------------------------------


@dataclass
class Distilled:
    """A trained student with its settings; `predict` gives the prediction and its uncertainty."""

    model: nn.Module
    spec: StudentSpec
    task: str
    teacher: nn.Module | None  # None: loaded from a run folder whose teacher could not be exported
    train_seconds: float
    folder: Path | None = None
    precision: str = "32"
    metrics: dict[str, Any] | None = None  # from `evaluate`, when `distil` was given ``val``
    early_stopping: dict[str, Any] | None = None  # what early stopping decided (EarlyStopping.record)
    member_validation: dict[str, list[float]] | None = None  # each member's validation error (RMSE) and NLL
    spread_scale: float | None = None  # the heads' spread factor `spread_scaled` fitted (None: as trained)

    def predict(self, x: Any, batch_size: int = 1024) -> dict[str, Tensor]:
        """Mean prediction (``probs``, or ``mean`` and ``variance``) and the predictive, aleatoric and
        epistemic uncertainty of every input."""
        out = predict(self.model, torch.as_tensor(x, dtype=torch.float32), batch_size, self.precision)
        if self.task == "classification":
            return {"probs": out.float().softmax(-1).mean(1), **classification_uncertainty(out)}
        parts = regression_uncertainty(out)
        return {"mean": out[..., 0].mean(1), "variance": parts["predictive"], **parts}

    def spread_scaled(self, val: Any) -> Distilled:
        """This student with its heads' spread scaled (docs/method.md#spread-scaling): one factor fitted
        on ``val`` (an array of inputs, or any data `as_tensors` reads) so that the student's mean epistemic
        uncertainty there equals the teacher's; `predict`, `evaluate` and `export` of the result use
        it. ``val`` must be data the members were not trained on (on their own training data they
        agree more than on new data, and the fit would shrink the spread)."""
        if self.teacher is None:
            raise ValueError("spread scaling needs the teacher; this result was loaded without one")
        if not get_method(self.spec.method).multi_head:
            raise ValueError(f"method {self.spec.method!r} has no heads to spread; spread scaling applies to "
                             "multi-head students (hydra+, hydra)")
        x = torch.as_tensor(val if hasattr(val, "shape") else as_tensors(val, "val")[0], dtype=torch.float32)
        student = self.model.student if isinstance(self.model, SpreadScaled) else self.model
        scale = fit_spread_scale(predict(student, x, precision=self.precision),
                                 predict(self.teacher, x, precision=self.precision), self.task)
        return replace(self, model=SpreadScaled(student, scale, self.task), spread_scale=scale, folder=None,
                       metrics=None)

    def evaluate(self, test: Any, *, ood: Any = None, out: str | Path | None = None,
                 latency_batches: Sequence[int] = (1, 256), device: str = "cpu",
                 record: dict[str, Any] | None = None, test_name: str = "test",
                 ood_name: str | None = None) -> dict[str, Any]:
        """The teacher beside the student on ``test`` (any data `as_tensors` reads): test metrics, OOD
        detection with ``ood``, the TV between their uncertainty histograms, and cost (the student
        alone without a teacher), measured by the one evaluation (`hydraplus.evaluation`, its
        `HeldOutSuite`) and written as ``evaluation.json``/``.md`` and ``report.md`` to ``out``
        (default: this result's folder, if any). Returned in its teacher-beside-student form (the
        student's row under ``"student"``, `teacher_student_view`). A student far from its teacher
        is warned about (`StudentWarning`)."""
        x, y = as_tensors(test, "test")
        y = read_targets(y, "test", 0, self.task)[1]
        x_ood = None if ood is None else ood_inputs(ood)
        suite = HeldOutSuite(x, y, self.task, x_ood, test_name, ood_name, dict(record or {}))
        evaluation = evaluate(self.models(), suite, precision=self.precision, latency_batches=latency_batches,
                              device=device)
        folder = out if out is not None else self.folder
        if folder is not None:
            write_evaluation(Path(folder), evaluation)
        warn_far_students(evaluation)
        return teacher_student_view(evaluation)

    def models(self) -> Models:
        """The teacher (where there is one) and the student, as an evaluation takes them."""
        models = {} if self.teacher is None else {"teacher": self.teacher}
        members = None if self.teacher is None else member_modules(self.teacher)
        name = self.spec.name
        stopped = {} if self.early_stopping is None else {name: self.early_stopping}
        return Models({**models, name: self.model}, reference="teacher", members=members,
                      train_seconds={name: self.train_seconds}, early_stopping=stopped,
                      specs={name: self.spec.to_dict()}, member_validation=self.member_validation,
                      spread_scales={} if self.spread_scale is None else {name: self.spread_scale})

    def export(self, path: str | Path, format: str = "pt2", example: Any = None) -> Path:
        """Write the student to ``path`` for serving without hydraplus, checked against it, with a JSON
        card beside it: ``"pt2"`` its method's export view as a torch.export program, ``"onnx"`` one ONNX
        graph that also outputs the mean prediction and the uncertainty (see `export_with_card`).
        ``example`` is one batch of inputs: it fixes their shape (the batch size stays dynamic)."""
        if example is None:
            raise ValueError("export needs example=: one batch of inputs (it fixes the input shape)")
        x = traceable(torch.as_tensor(example, dtype=torch.float32).cpu())
        card = {"model": self.spec.name, "method": self.spec.method, "versions": versions(),
                **({} if self.spread_scale is None else {"spread_scale": self.spread_scale})}
        return export_with_card(self.model.cpu(), self.spec.method, self.task, x, Path(path), format, card)


def member_modules(teacher: nn.Module) -> list[nn.Module] | None:
    """The teacher's members as modules, where it is made of them (a list of modules, or a looped
    `Ensemble`); None for other teachers (a loaded program, a callable, a stacked ensemble)."""
    count = None
    if isinstance(teacher, ReadTeacher):
        count = teacher.members
    while isinstance(teacher, ReadTeacher):
        teacher = teacher.teacher
    if isinstance(teacher, Members) and (count is None or len(teacher.members) == count):
        return list(teacher.members)  # teacher files: one member each
    if isinstance(teacher, Ensemble) and teacher.members.looped is not None:
        return [teacher.member(i) for i in range(teacher.size)]
    return None


@flushing_denormals()
def distil(teacher: Any, train: Any, *, method: str = "hydra+", heads: int | None = None,
           epochs: int = 20, student: Any = None, split: Split = None, lam: float | str = "auto",
           val: Any = None, ood: Any = None, out: str | Path | None = None, device: str = "cpu",
           seed: int = 0, resume: bool = False, overwrite: bool = False, output: Selector = None,
           members: int | None = None, regression_output: str | None = None,
           progress: bool = False, precision: str = "32",
           channels_last: bool = True, compile: bool = False, record: dict[str, Any] | None = None,
           devices: int = 1, num_nodes: int = 1, strategy: str = "auto", patience: int | None = 5,
           val_fraction: float = 0.1, **settings: Any) -> Distilled:
    """Distil ``teacher`` into a student trained with ``method`` on ``train``; see the module doc.

    ``student`` is an nn.Module returning ``[B, M, D]``, a ``(core, head_factory)`` pair, or a
    callable ``student(heads=M, outputs=D)`` returning either; without it the student is cut from
    the first member, its heads starting at the module path ``split`` (see the module doc).
    ``settings`` are any student settings (``lr``, ``weight_decay``, ``batch_size``, ``alpha``,
    ``beta``, ``t_mean``, ``t_ind``, ``kl_coeff``, ``samples``, ``augment``: image augmentation as in a
    config, the teacher then running on every augmented batch). ``lam`` is Hydra+'s diversity
    weight: a number, or ``"auto"`` (default) to have it chosen while training so that the
    student's typical (geometric-mean) epistemic uncertainty on a probe set matches the
    teacher's; the probe set is ``ood``'s inputs when given, else inputs away from the training
    data made from them
    (`hydraplus.data.probe`). With ``out`` the folder is a run that `load_distilled` and ``hydraplus
    evaluate``, ``compare`` and ``export`` read (`hydraplus.pipeline.run_folder`: ``config.json``,
    with ``record``'s keys too, checkpoints, and the student and teacher as torch.export programs),
    and ``resume`` continues an interrupted run in it; without ``out`` the teacher's cache and the
    checkpoints live in a temporary folder removed when the call returns. ``precision`` is ``"32"``,
    ``"bf16-mixed"`` or ``"16-mixed"`` (CUDA), for training and for `Distilled.predict` /
    `Distilled.evaluate`;
    ``channels_last`` lays a convolutional student out NHWC (faster, the same numbers up to rounding);
    ``compile`` compiles it in place with ``torch.compile`` (off by default: slower on CPUs measured).
    ``val`` is held-out data (any form ``train`` takes): after training the teacher and the student
    are evaluated on it, with ``ood`` for OOD detection, into `Distilled.metrics` (see
    `Distilled.evaluate`; ``evaluation.json``/``.md`` and ``report.md`` in ``out``).
    ``ood`` and ``val`` take any form ``train`` does; ``ood``'s labels,
    if any, are ignored (an array or tensor of inputs alone works too).

    How the teacher's outputs and the targets are read (`hydraplus.inputs.contracts`):
    ``output`` picks the predictions from tuple, dict or object outputs (an index, key or
    attribute; ``.logits`` is found without it); ``members`` is N for one module that runs N
    members (``[B, N, D]``, ``[N, B, D]`` or ``[N·B, D]``; found without it); ``regression_output``
    is ``"log_variance"``, ``"variance"``, ``"std"`` or ``"mean"`` (mean-only members) and makes the
    task regression. Probabilities are read as their logs; labels of any integer dtype,
    whole-number floats, ``[N, 1]`` and one-hot become class indices, each conversion said once
    (a `ContractNote` warning). A teacher of one member is refused. Every input is checked before
    anything is written: an ``out`` that already holds a run needs ``resume`` (continue it) or
    ``overwrite`` (replace it; only a hydraplus run is ever deleted).

    Early stopping (docs/method.md#early-stopping): ``val_fraction`` of ``train`` (seeded by ``seed``)
    is held out, and training stops once ``patience`` epochs in a row have not lowered the KL from the
    teacher's predictive distribution to the student's on it; ``epochs`` is the cap and the best
    epoch's weights are kept (`Distilled.early_stopping` records it). ``patience=None`` trains all
    ``epochs`` on all of ``train``. Without ``val``, the finished student is checked against its
    teacher on that held-out part (`holdout_check`): a `StudentWarning` when it is far from it, and
    ``warnings`` in ``out``'s ``config.json``.

    ``devices`` per node × ``num_nodes`` processes train together with ``strategy`` (``auto``: DDP on
    several; `hydraplus.engine.distributed`). Each runs this whole call (Lightning starts the others
    by running the calling script again); the batch size is the global one, ``out`` is needed and
    must be a folder every process sees, the teacher's outputs are computed once (global rank 0) and
    global rank 0 alone writes files and evaluates on ``val`` (the others' `Distilled.metrics` stay
    None). A CUDA ``device`` becomes each process's own GPU.
    """
    keep_allocator_memory()
    trainer_settings = TrainerSettings(devices, num_nodes, strategy)
    world_size = trainer_settings.world_size
    if world_size > 1 and out is None:
        raise ValueError(f"distil on {world_size} processes needs out=: a folder every process sees (the "
                         "teacher's outputs are cached there once for all of them)")
    if world_size > 1 and str(device) == "cuda":  # each process its own GPU, as Lightning assigns them
        device = f"cuda:{process_rank(devices) % devices}"
    x, y = as_tensors(train, "train")
    module, task, y = read_teacher_and_targets(teacher, x, y, output=output, members=members,
                                               regression_output=regression_output, device=device)
    num_classes = module.outputs if task == "classification" else 2
    check_dataset(x, y, task, num_classes, "train")
    inner = module.teacher
    spec = _spec(task, module.members, method, heads, lam, epochs, {**settings, "patience": patience})
    x_val = y_val = None
    if spec.patience is not None:
        (x, y), (x_val, y_val) = holdout(x, y, val_fraction, seed)
    trainer_settings.check_batch_size(spec.batch_size, "distil batch_size")
    check_batches(len(x), spec.batch_size, world_size, "distil")
    x_ood = None if ood is None else ood_inputs(ood)
    if x_ood is not None:
        check_inputs_like(x_ood, x, "ood")
    val_data = None if val is None else _val_data(val, task, num_classes, x)
    data = StudentData(x, y, num_classes, "train", fill=_fill(x, record), x_val=x_val, probe=x_ood,
                       probe_source=OFF_DATA_PROBE if x_ood is None else "the OOD inputs given (ood=)",
                       guard=x_val)
    seeds = StudentSeeds(data=seed, augment=seed, probe=seed, guard=seed, mixup=seed)
    data.probe_set = lambda_probe(spec, task, data, module, seeds, "distil")  # checked before any file
    L.seed_everything(seed, verbose=False)
    student_model = _student(student, module, split, x[:2].to(device), spec, num_classes)
    if channels_last and has_conv(student_model):
        use_channels_last(student_model)
    shown: bool | RunProgress = progress
    if progress and is_rank_zero(devices, num_nodes):  # timed before compiling (which would cost more)
        shown = plan_distil(student_model, spec, x, device, world_size, precision)
    if compile:
        student_model.compile()
    scratch = (tempfile.TemporaryDirectory(prefix="hydraplus-distil-", ignore_cleanup_errors=True)
               if out is None else None)  # where mapped files cannot be deleted (Windows) it stays, no error
    folder = Path(out) if scratch is None else Path(scratch.name)
    try:  # without out=, the cache and checkpoints live in a scratch folder removed at the end
        if out is not None:  # every input checked: the first file written
            write = is_rank_zero(devices, num_nodes)
            if write:
                prepare_out_dir(folder, resume, overwrite)
            start_distil_run(folder, spec, task, list(x.shape[1:]), seed=seed, precision=precision,
                             record=record, resume=resume, world_size=world_size, write=write,
                             val_fraction=None if spec.patience is None else val_fraction)
        if spec.augment is None and spec.mixup is None:  # else the teacher runs on every changed batch
            cache_dir = folder / "cache" if _cacheable(inner) else None
            data.teacher_outputs = cache.TeacherOutputs(module, x, cache_dir)
        member_validation = None
        if x_val is not None and y_val is not None and spec.patience is not None:
            data.teacher_val = predict(module, x_val, precision=precision)
            member_validation = member_scores(data.teacher_val, y_val, task)
        if isinstance(shown, RunProgress):  # the first line: the student and its estimated time
            shown.announce("distilling into")
        trained = distil_student(student_model, spec, task, data, folder / spec.name, teacher=module,
                                 seeds=seeds, label=spec.name, name="distil", trainer=trainer_settings,
                                 precision=precision, progress=shown, resume=resume,
                                 accelerator="gpu" if str(device).startswith("cuda") else "cpu")
        result = Distilled(student_model, spec, task, module.cpu(), trained.seconds,
                           folder if out is not None else None, precision,
                           early_stopping=trained.early_stopping, member_validation=member_validation)
        if not trained.global_zero:
            return result
        finished: dict[str, Any] = {"train_seconds": result.train_seconds,
                                    "member_validation": member_validation,
                                    "early_stopping": result.early_stopping}
        warning = None  # without val=, the student is checked against its teacher on the early-stopping split
        if val_data is None and data.teacher_val is not None and x_val is not None and y_val is not None:
            warning = holdout_check(student_model, spec, task, data.teacher_val, x_val, y_val,
                                    precision=precision, seed=seed, fraction=val_fraction)
            finished["warnings"] = [] if warning is None else [warning]
        if out is not None:
            finish_distil_run(folder, get_method(spec.method).export_view(student_model, task)[0], spec.name,
                              result.teacher, traceable(x[:2]), finished)
        if warning is not None:
            warnings.warn(StudentWarning(warning), stacklevel=2)
        if val_data is not None:
            result.metrics = result.evaluate(val_data, ood=x_ood, device=device, record=record)
        return result
    finally:
        if scratch is not None:
            scratch.cleanup()


def holdout_check(student: nn.Module, spec: StudentSpec, task: str, teacher_val: Tensor, x_val: Tensor,
                  y_val: Tensor, *, precision: str = "32", seed: int = 0, fraction: float = 0.1
                  ) -> str | None:
    """`far_from_teacher`'s sentence for the trained ``student`` on the examples early stopping held
    out of the training data (``x_val``, ``y_val``; the teacher's outputs on them ``teacher_val``),
    or None: the check a run without held-out test data (``val=``) still gets, on each model's ECE
    and the student's class agreement with the teacher. The members are not compared with the
    student here: they were trained on these examples, the student was not (on digits the members'
    mean error is 0.16% there against 3.8% on test data, a sound student's 1.6% against 3.5%)."""
    with torch.random.fork_rng():  # a sampling student draws from the seed, the caller's state kept
        torch.manual_seed(seed)
        outputs = {"teacher": teacher_val, "student": predict(student, x_val, precision=precision)}
    rows: dict[str, dict[str, Any]] = {key: laid_out(test_groups(task, out, y_val))
                                       for key, out in outputs.items()}
    rows["teacher"].update(name="teacher", members=teacher_val.shape[1])
    rows["student"].update(name=spec.name, spec=spec.to_dict())
    if task == "classification":
        agreement = fidelity(outputs["student"], teacher_val)["agreement"]
        laid_out({"distil": section("distil", {"agreement": agreement})}, rows["student"])
    examples = (f"{len(x_val)} examples held out of the training data (the {100 * fraction:g}% early "
                "stopping validates on; pass val= to evaluate on test data)")
    return far_from_teacher({"task": task, "test_size": len(x_val), "examples": examples, "models": rows})


def _fill(x: Tensor, record: dict[str, Any] | None) -> tuple[float, ...] | float | None:
    """An augmented student's border value: a black pixel in the inputs' normalisation (``record``'s
    ``normalization``, else inputs in [0, 1]); None for inputs that are not images."""
    if x.dim() != 4:
        return None
    norm = (record or {}).get("normalization")
    if not norm:
        return 0.0
    return tuple(-m / s for m, s in zip(norm["mean"], norm["std"], strict=True))


def read_teacher_and_targets(teacher: Any, x: Tensor, y: Tensor, *, output: Selector = None,
                             members: int | None = None, regression_output: str | None = None,
                             device: str = "cpu") -> tuple[ReadTeacher, str, Tensor]:
    """The teacher (on ``device``) read in hydraplus' convention, the task and the training targets
    converted for it (`hydraplus.inputs.contracts`); a one-member teacher is refused."""
    module = read_teacher(as_teacher(teacher, output).to(device), x.to(device), output=output,
                          members=members, regression_output=regression_output)
    task, y = read_targets(y, "train", module.outputs, None if regression_output is None else "regression")
    check_members(module.members)
    read_kind(module, x.to(device), task, regression_output)
    return module, task, y


def _val_data(val: Any, task: str, num_classes: int, train: Tensor, name: str = "val"
              ) -> tuple[Tensor, Tensor]:
    """The validation (or test) data, read and checked before training: its labels as the training
    labels, its inputs of the training inputs' shape."""
    x, y = as_tensors(val, name)
    y = read_targets(y, name, num_classes, task)[1]
    check_dataset(x, y, task, num_classes, name)
    check_inputs_like(x, train, name)
    return x, y


def check_test_data(teacher: Any, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *,
                    output: Selector = None, members: int | None = None, regression_output: str | None = None
                    ) -> None:
    """The evaluation data of `hydraplus distil` checked against the teacher's contract (labels, shape)
    before `distil` writes anything, so a bad test split never leaves a run behind."""
    x, y = train
    with warnings.catch_warnings():  # the notes are said once, by `distil`
        warnings.simplefilter("ignore", ContractNote)
        module, task, _ = read_teacher_and_targets(teacher, x[:64], y[:64], output=output, members=members,
                                                   regression_output=regression_output)
        _val_data(test, task, module.outputs if task == "classification" else 2, x, "test")


def holdout(x: Tensor, y: Tensor, fraction: float, seed: int
            ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``((x_train, y_train), (x_val, y_val))``: a seeded ``fraction`` of the examples held out for
    validation (both parts keep the original order)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be a number in (0, 1), got {fraction!r}")
    n_val = round(fraction * len(x))
    if n_val < 2 or len(x) - n_val < 1:
        raise ValueError(f"distil: early stopping holds out val_fraction={fraction:g} of the {len(x)} "
                         f"training examples ({n_val}), but needs at least 2 for validation and 1 for "
                         "training; pass more data, a larger val_fraction, or patience=None")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    return (x[train], y[train]), (x[val], y[val])


def _cacheable(module: nn.Module) -> bool:
    """Teachers with weights are cached (keyed by them); bare callables are run once in memory."""
    return any(True for _ in module.state_dict())


def _spec(task: str, members: int, method: str, heads: int | None, lam: float | str, epochs: int,
          settings: dict[str, Any]) -> StudentSpec:
    """The student's settings from the method's defaults and the caller's choices."""
    shared_keys = {"lr", "weight_decay", "batch_size", "alpha", "beta", "t_mean", "t_ind", "kl_coeff"}
    shared = StudentDefaults(epochs=epochs, lr=settings.pop("lr", 0.01),
                             weight_decay=settings.pop("weight_decay", 1e-8),
                             **{k: settings.pop(k) for k in list(settings) if k in shared_keys - {"lr"}})
    entry: dict[str, Any] = {"method": method, **settings}
    if heads is not None:
        entry["heads"] = heads
    if get_method(method).uses_lambda:
        entry["lambda"] = lam
    try:
        return resolve_student(task, members, shared, entry)
    except ConfigError as err:
        raise ConfigError(str(err).replace("students[0] ", "distil ")) from err


def _student(student: Any, teacher: ReadTeacher, split: Split, example: Tensor, spec: StudentSpec,
             outputs: int) -> nn.Module:
    """The given student, one built from a (core, head_factory) pair or by a factory called as
    ``student(heads=M, outputs=D)``, or one cut from the teacher's first member; checked to give
    ``[B, M, D]`` on ``example`` (D = ``outputs``: classes, or 2 for regression)."""
    method = get_method(spec.method)
    if callable(student) and not isinstance(student, nn.Module):
        name = getattr(student, "__name__", type(student).__name__)
        student = student(heads=spec.heads, outputs=outputs)
        if not isinstance(student, nn.Module | tuple) or (isinstance(student, tuple) and len(student) != 2):
            raise TypeError(f"the student factory {name} returned {type(student).__name__}; it must return "
                            f"{STUDENT_FORMS}")
    if isinstance(student, nn.Module):
        method.check_student(student)
        model = student
    elif isinstance(student, tuple) and len(student) == 2:
        core, head_factory = student
        model = method.build(core, head_factory, spec)
    elif student is not None:
        raise TypeError(f"student must be {STUDENT_FORMS}, or a factory returning one, got "
                        f"{type(student).__name__}")
    else:
        model = _cut_student(teacher, split, example, spec)
    _check_outputs(model, example, spec.heads if method.multi_head else spec.samples, outputs)
    return model


def _cut_student(teacher: ReadTeacher, split: Split, example: Tensor, spec: StudentSpec) -> nn.Module:
    """The student cut from the teacher's first member, with M fresh copies of its head. Members
    giving a variance, a std or a mean alone get heads ending at their final Linear, new with two
    outputs: the student's (mean, log-variance). Members giving probabilities (a softmax anywhere
    in their forward or program) get heads ending at their final Linear too: the student outputs
    logits, as every student does."""
    members = teacher.teacher
    if isinstance(members, Ensemble) and members.members.looped is not None:
        members = Members(list(members.members.looped))
    if not isinstance(members, Members):
        raise ValueError("without student=, the student is cut from the teacher's first member, which "
                         f"needs the teacher as a list of modules; pass student= ({STUDENT_FORMS})")
    core, head = split_member(members.members[0], split, example, members.output)
    if teacher.kind in ("variance", "std", "mean"):
        head = with_outputs(head, 2)
    elif teacher.kind == "probabilities":
        try:
            head = with_outputs(head, teacher.outputs)
        except ValueError as err:
            raise ValueError(f"the teacher's members output probabilities, so the student's heads end at "
                             f"their final Linear (to output logits); {err}") from err
    return get_method(spec.method).build(core, lambda: fresh_copy(head), spec)


def _check_outputs(model: nn.Module, example: Tensor, heads: int, outputs: int) -> None:
    """A ValueError unless ``model`` gives ``[B, heads, outputs]`` on ``example``."""
    model.to(example.device)
    was_training = model.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            got = model.eval()(example)
    finally:
        model.train(was_training)
    expected = [len(example), heads, outputs]
    if not isinstance(got, Tensor) or list(got.shape) != expected:
        shape = list(got.shape) if isinstance(got, Tensor) else type(got).__name__
        raise ValueError(f"the student gives outputs of shape {shape} on inputs of shape "
                         f"{list(example.shape)}; it must give [B, M, D] = {expected} ({heads} heads or "
                         f"samples of the teacher's {outputs} outputs)")


def load_distilled(run_dir: str | Path) -> Distilled:
    """The result of a finished distillation from its folder: the student and the teacher as loaded
    programs (the teacher None where it could not be exported), with their settings."""
    run_dir = Path(run_dir)
    meta = read_distil_config(run_dir)
    programs = meta.get("programs")
    if programs is None:
        raise ValueError(f"the distillation in {run_dir} has not finished (no programs yet); continue it "
                         "with resume=True (hydraplus distil ... --resume)")
    spec = StudentSpec.from_dict(meta["spec"])
    model = get_method(spec.method).from_export_view(load_program(run_dir / programs["student"]), spec)
    teacher = None if programs["teacher"] is None else load_program(run_dir / programs["teacher"])
    scale = meta.get("spread_scale")
    if scale is not None:
        model = SpreadScaled(model, float(scale), meta["task"])
    return Distilled(model, spec, meta["task"], teacher, meta["train_seconds"], run_dir, meta["precision"],
                     early_stopping=meta.get("early_stopping"),
                     member_validation=meta.get("member_validation"), spread_scale=scale)
