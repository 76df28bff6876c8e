"""Evaluate a distillation: the teacher beside its student on test data (`Distilled.evaluate`).

Per model the test metrics (classification: error, ECE with 10 equal-width and 10 equal-mass bins,
NLL, Brier, the mean predictive/aleatoric/epistemic entropy, AURC, AUGRC and the risk at 80%/95%
coverage; regression: RMSE, MAE, Gaussian NLL, the mean stds and the coverage and width of the
50/90/95% central intervals), out-of-distribution detection when OOD inputs are given (energy and
max-logit too where the outputs are logits), parameters, FLOPs and
latency; for the student also the total variation between its and the teacher's histograms
of each uncertainty on the test set. A result without a teacher (loaded from a run folder whose
teacher could not be exported) has the student's row only. The result is plain JSON data::

    {"task": ..., "test_size": ..., "ood_size": ..., "settings": {...}, "record": {...},
     "models": {"teacher": {"name", "members", "test", "ood", "profile"},
                "member": {...}, "member-best": {...},  # each member alone: mean, and the best
                "student": {"name", "spec", "test", "ood", "profile", "tv", "train_seconds",
                            "early_stopping"}},
     "members": {"count", "best", "selected_by", "scores", "rows": [each member's row]}}

The member rows (`hydraplus.experiments.members`) come from the teacher's outputs, member by member;
their cost only where the teacher is made of modules. The best member is the one with the lowest
error (RMSE) on the validation split early stopping held out, else on the test data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from hydraplus.core.checks import check_dataset
from hydraplus.core.containers import Ensemble
from hydraplus.core.metrics import RegressionMetrics
from hydraplus.core.ood import detection_scores, ood_detection
from hydraplus.core.predict import predict
from hydraplus.core.profile import profile_model
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty, total_variation
from hydraplus.experiments.image_eval import RELIABILITY_BINS, UNCERTAINTIES, image_metrics
from hydraplus.experiments.members import member_outputs, member_scores, summarize, with_members
from hydraplus.inputs.arrays import as_tensors, ood_inputs
from hydraplus.inputs.contracts import Members, ReadTeacher, read_targets
from hydraplus.report.distil import StudentWarning, far_from_teacher, write_distil_report

if TYPE_CHECKING:
    from hydraplus.experiments.distil import Distilled

TV_BINS = 50
SEED = 0  # sampling students draw from a generator seeded with it


def _uncertainty(task: str, outputs: Tensor) -> dict[str, Tensor]:
    if task == "classification":
        return classification_uncertainty(outputs)
    return regression_uncertainty(outputs)


def _test_metrics(task: str, outputs: Tensor, y: Tensor) -> dict[str, float]:
    if task == "classification":
        return image_metrics(outputs, y, outputs.shape[-1])
    metrics = RegressionMetrics()
    metrics.update(outputs, y)
    return metrics.compute()


def _ood(task: str, outputs: Tensor, ood_outputs: Tensor) -> dict[str, float]:
    """AUROC and AUPR of the predictive and epistemic uncertainty (entropies, or variances)."""
    if task == "classification":
        return ood_detection(outputs, ood_outputs)
    inside, outside = regression_uncertainty(outputs), regression_uncertainty(ood_outputs)
    return {f"{measure}_{key}": value for measure in ("predictive", "epistemic")
            for key, value in detection_scores(inside[measure], outside[measure]).items()}


def _tv(model: dict[str, Tensor], teacher: dict[str, Tensor], upper: dict[str, float]) -> dict[str, float]:
    """The total variation between each uncertainty's histograms (0 where the teacher's upper end is 0)."""
    return {k: total_variation(model[k], teacher[k], upper[k], TV_BINS) if upper[k] > 0 else 0.0
            for k in UNCERTAINTIES}


def member_modules(teacher: nn.Module, count: int) -> list[nn.Module] | None:
    """The teacher's ``count`` members as modules, where it is made of them (a list of modules, or a
    looped `Ensemble`); None for other teachers (a loaded program, a callable, a stacked ensemble)."""
    while isinstance(teacher, ReadTeacher):
        teacher = teacher.teacher
    if isinstance(teacher, Members) and len(teacher.members) == count:  # teacher files: one member each
        return list(teacher.members)
    if isinstance(teacher, Ensemble) and teacher.members.looped is not None:
        return [teacher.member(i) for i in range(teacher.size)]
    return None


def _member_rows(result: Distilled, outputs: Tensor, ood_outputs: Tensor | None, y: Tensor, example: Tensor,
                 batch_sizes: list[int]) -> list[dict[str, Any]]:
    """Each member alone: test metrics and OOD detection from its slice of the teacher's outputs, and its
    cost where the teacher is made of modules (`member_modules`)."""
    assert result.teacher is not None
    modules = member_modules(result.teacher, outputs.shape[1])
    rows: list[dict[str, Any]] = []
    for i, out in enumerate(member_outputs(outputs)):
        row: dict[str, Any] = {"test": _test_metrics(result.task, out, y)}
        if ood_outputs is not None:
            row["ood"] = _ood(result.task, out, ood_outputs[:, i : i + 1])
        if modules is not None:
            row["profile"] = profile_model(modules[i], example, batch_sizes, precision=result.precision)
        rows.append(row)
    return rows


def evaluate_distilled(result: Distilled, test: Any, *, ood: Any = None, out: str | Path | None = None,
                       latency_batches: Sequence[int] = (1, 256), device: str = "cpu",
                       record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The teacher beside the student on ``test`` (any data `as_tensors` reads); see the module doc.

    ``ood``: out-of-distribution inputs (a tensor, an ``.npz`` or any data `as_tensors` reads).
    Both models run on ``device`` and are put back on the CPU. ``record`` (e.g. how the inputs
    were normalised) is kept as is. With ``out`` (default: the result's folder) ``metrics.json``
    and ``report.md`` are written there.
    """
    batch_sizes = [int(b) for b in latency_batches]
    if any(b < 1 for b in batch_sizes):
        raise ValueError(f"latency batch sizes must be positive, got {batch_sizes}")
    x, y = as_tensors(test, "test")
    y = read_targets(y, "test", 0, result.task)[1]
    x_ood = None if ood is None else ood_inputs(ood)
    task = result.task
    models = {name: model for name, model in (("teacher", result.teacher), ("student", result.model))
              if model is not None}
    outputs: dict[str, Tensor] = {}
    ood_outputs: dict[str, Tensor] = {}
    rows: dict[str, dict[str, Any]] = {name: {} for name in models}
    member_rows: list[dict[str, Any]] = []
    try:
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            for name, model in models.items():
                model.to(device)
                outputs[name] = predict(model, x, precision=result.precision)
                if len(outputs) == 1:  # the first model's outputs give the classes
                    classes = outputs[name].shape[-1] if task == "classification" else 2
                    check_dataset(x, y, task, classes, "test")
                row = rows[name]
                row["test"] = _test_metrics(task, outputs[name], y)
                if x_ood is not None:
                    ood_outputs[name] = predict(model, x_ood, precision=result.precision)
                    row["ood"] = _ood(task, outputs[name], ood_outputs[name])
                row["profile"] = profile_model(model, x[:1], batch_sizes, precision=result.precision)
            if "teacher" in outputs:
                member_rows = _member_rows(result, outputs["teacher"], ood_outputs.get("teacher"), y, x[:1],
                                           batch_sizes)
    finally:
        for model in models.values():
            model.cpu()
    upper = None
    if "teacher" in outputs:
        uncertainty = {name: _uncertainty(task, values) for name, values in outputs.items()}
        upper = {k: math.log(outputs["teacher"].shape[-1]) if task == "classification"
                 else max(uncertainty["teacher"][k].max().item(), uncertainty["student"][k].max().item())
                 for k in UNCERTAINTIES}
        rows["student"]["tv"] = _tv(uncertainty["student"], uncertainty["teacher"], upper)
        for row, member in zip(member_rows, member_outputs(outputs["teacher"]), strict=True):
            row["tv"] = _tv(_uncertainty(task, member), uncertainty["teacher"], upper)
        rows["teacher"] = {"name": "teacher", "members": outputs["teacher"].shape[1], **rows["teacher"]}
        if task == "classification":  # how often the student's class is the teacher's
            classes = {name: values.softmax(-1).mean(1).argmax(-1) for name, values in outputs.items()}
            rows["student"]["agreement"] = float((classes["student"] == classes["teacher"]).float().mean())
    rows["student"] = {"name": result.spec.name, "spec": result.spec.to_dict(), **rows["student"],
                       "train_seconds": result.train_seconds}
    if result.early_stopping is not None:
        rows["student"]["early_stopping"] = result.early_stopping
    member_record = None
    if member_rows:
        unit = "error" if task == "classification" else "RMSE"
        if result.member_validation is not None:
            scores = result.member_validation
            selected_by = f"validation {unit} (the early-stopping split; ties: NLL)"
        else:
            scores = member_scores(outputs["teacher"], y, task)
            selected_by = f"test {unit} (no validation split; ties: NLL)"
        member_models, member_record = summarize(member_rows, scores, selected_by)
        rows = with_members(rows, member_models)
    metrics: dict[str, Any] = {
        "task": task,
        "num_classes": outputs["student"].shape[-1] if task == "classification" else None,
        "test_size": len(x), "ood_size": None if x_ood is None else len(x_ood),
        "settings": {"ece_bins": RELIABILITY_BINS, "tv_bins": TV_BINS, "tv_upper": upper,
                     "latency_batch_sizes": batch_sizes, "device": str(device), "seed": SEED},
        "record": dict(record or {}),
        "models": rows,
    }
    if member_record is not None:
        metrics["members"] = member_record
    folder = out if out is not None else result.folder
    if folder is not None:
        write_distil_report(Path(folder), metrics)
    warning = far_from_teacher(metrics)
    if warning is not None:
        warnings.warn(StudentWarning(warning), stacklevel=2)
    return metrics
