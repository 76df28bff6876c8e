"""The held-out suite: a teacher beside its student on test tensors given by the caller (the suite of
`hydraplus.distil`'s runs, `Distilled.evaluate`).

Per model the test metrics (classification: error, ECE with 10 equal-width and 10 equal-mass bins,
NLL, Brier, the mean predictive/aleatoric/epistemic entropy, AURC, AUGRC and the risk at 80%/95%
coverage; regression: RMSE, MAE, Gaussian NLL, the mean stds and the coverage and width of the
50/90/95% central intervals), out-of-distribution detection when OOD inputs are given (energy and
max-logit too where the outputs are logits), parameters, FLOPs and
latency; for the student also the total variation between its and the teacher's histograms
of each uncertainty on the test set. Models without a teacher (loaded from a run folder whose
teacher could not be exported) have the student's row only. `evaluate_held_out` gives plain JSON
data, which `held_out_evaluation` turns into the one evaluation schema (`hydraplus.evaluation`)::

    {"task": ..., "test_size": ..., "ood_size": ..., "settings": {...}, "record": {...},
     "models": {"teacher": {"name", "members", "clean", "ood", "profile"},
                "member": {...}, "member-best": {...},  # each member alone: mean, and the best
                "student": {"name", "spec", "clean", "ood", "profile", "tv", "agreement",
                            "train_seconds", "early_stopping"}},
     "members": {"count", "best", "selected_by", "scores", "rows": [each member's row]}}

The member rows (`hydraplus.evaluation.members`) come from the teacher's outputs, member by member;
their cost only where the teacher's member modules are given. The best member is the one with the
lowest error (RMSE) on the validation split early stopping held out, else on the test data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from hydraplus.core.checks import check_dataset
from hydraplus.core.predict import predict
from hydraplus.core.profile import profile_model
from hydraplus.evaluation.members import member_outputs, member_scores, summarize, with_members
from hydraplus.evaluation.rows import (
    RELIABILITY_BINS,
    TV_BINS,
    UNCERTAINTIES,
    Histograms,
    laid_out,
    row_groups,
    uncertainty,
)
from hydraplus.metrics import SCHEMA, section

if TYPE_CHECKING:
    from hydraplus.evaluation import Models, Settings

KIND = "distil"


@dataclass
class HeldOutSuite:
    """Test inputs and targets (``x``, ``y``: already read, the targets as the training ones) of a
    ``task``, OOD inputs (``x_ood``) if any, their names in the evaluation (``test_name``,
    ``ood_name``) and the caller's ``record`` (e.g. how the inputs were normalised), kept as is."""

    x: Tensor
    y: Tensor
    task: str
    x_ood: Tensor | None = None
    test_name: str = "test"
    ood_name: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict)
    kind: str = KIND

    def evaluate(self, models: Models, settings: Settings) -> dict[str, Any]:
        return held_out_evaluation(evaluate_held_out(models, self, settings), self.test_name, self.ood_name)


def _member_rows(task: str, outputs: Tensor, ood_outputs: Tensor | None, y: Tensor, teacher: Histograms,
                 profiles: Sequence[dict[str, float]] | None, batch_sizes: Sequence[int]
                 ) -> list[dict[str, Any]]:
    """Each member alone: test metrics, OOD detection and the total variation to the ``teacher``'s
    uncertainty histograms from its slice of the teacher's outputs, and its cost where its ``profiles``
    are given."""
    rows: list[dict[str, Any]] = []
    for i, out in enumerate(member_outputs(outputs)):
        rows.append(laid_out(row_groups(
            task, out, y, ood_outputs=None if ood_outputs is None else ood_outputs[:, i : i + 1],
            histograms=replace(teacher, model=uncertainty(task, out)),
            profile=None if profiles is None else profiles[i], batch_sizes=batch_sizes)))
    return rows


def evaluate_held_out(models: Models, suite: HeldOutSuite, settings: Settings) -> dict[str, Any]:
    """The teacher (``models.reference``, if among the models) beside the one student on the suite's
    test data; see the module doc. Both run on ``settings.device`` and are put back on the CPU."""
    batch_sizes = [int(b) for b in settings.latency_batches]
    if any(b < 1 for b in batch_sizes):
        raise ValueError(f"latency batch sizes must be positive, got {batch_sizes}")
    x, y, x_ood, task = suite.x, suite.y, suite.x_ood, suite.task
    precision, device = settings.precision, settings.device
    students = [key for key in models.models if key != models.reference]
    if len(students) != 1:
        raise ValueError(f"the held-out suite evaluates one student beside its teacher, got {students}")
    name, spec = students[0], models.specs.get(students[0], {})
    teacher = models.models.get(models.reference)
    evaluated = {key: model for key, model in (("teacher", teacher), ("student", models.models[name]))
                 if model is not None}
    outputs: dict[str, Tensor] = {}
    ood_outputs: dict[str, Tensor] = {}
    profiles: dict[str, dict[str, float]] = {}
    try:
        with torch.random.fork_rng():
            torch.manual_seed(settings.seed)
            for key, model in evaluated.items():
                model.to(device)
                outputs[key] = predict(model, x, precision=precision)
                if len(outputs) == 1:  # the first model's outputs give the classes
                    classes = outputs[key].shape[-1] if task == "classification" else 2
                    check_dataset(x, y, task, classes, "test")
                if x_ood is not None:
                    ood_outputs[key] = predict(model, x_ood, precision=precision)
                profiles[key] = profile_model(model, x[:1], batch_sizes, precision=precision)
            member_profiles = None if teacher is None or models.members is None else [
                profile_model(member, x[:1], batch_sizes, precision=precision) for member in models.members]
    finally:
        for model in evaluated.values():
            model.cpu()
    upper, histograms = None, {}
    if "teacher" in outputs:
        unc = {key: uncertainty(task, values) for key, values in outputs.items()}
        upper = {k: math.log(outputs["teacher"].shape[-1]) if task == "classification"
                 else max(unc["teacher"][k].max().item(), unc["student"][k].max().item())
                 for k in UNCERTAINTIES}
        histograms["student"] = Histograms(unc["student"], unc["teacher"], upper)
    rows = {key: laid_out(row_groups(task, outputs[key], y, ood_outputs=ood_outputs.get(key),
                                     histograms=histograms.get(key), profile=profiles[key],
                                     batch_sizes=batch_sizes))
            for key in evaluated}
    member_rows: list[dict[str, Any]] = []
    if "teacher" in outputs:
        assert upper is not None
        member_rows = _member_rows(task, outputs["teacher"], ood_outputs.get("teacher"), y,
                                   Histograms({}, unc["teacher"], upper), member_profiles, batch_sizes)
        rows["teacher"] = {"name": "teacher", "members": outputs["teacher"].shape[1], **rows["teacher"]}
        if task == "classification":  # how often the student's class is the teacher's
            classes = {key: values.softmax(-1).mean(1).argmax(-1) for key, values in outputs.items()}
            agreement = float((classes["student"] == classes["teacher"]).float().mean())
            laid_out({"distil": section("distil", {"agreement": agreement})}, rows["student"])
    rows["student"] = {"name": name, "spec": spec, **rows["student"],
                       "train_seconds": models.train_seconds.get(name)}
    if models.early_stopping.get(name) is not None:
        rows["student"]["early_stopping"] = models.early_stopping[name]
    member_record = None
    if member_rows:
        unit = "error" if task == "classification" else "RMSE"
        if models.member_validation is not None:
            scores = models.member_validation
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
                     "latency_batch_sizes": batch_sizes, "device": str(device), "seed": settings.seed},
        "record": dict(suite.record),
        "models": rows,
    }
    if member_record is not None:
        metrics["members"] = member_record
    return metrics


def held_out_evaluation(metrics: dict[str, Any], name: str, ood: str | None = None) -> dict[str, Any]:
    """The evaluation (the one schema) of `evaluate_held_out`'s ``metrics`` on the test data ``name``
    (and the OOD data ``ood``): rows ``teacher`` (if evaluated), the member rows and the student's name."""
    models = {row["name"] if key == "student" else key: row for key, row in metrics["models"].items()}
    teacher = metrics["models"].get("teacher")
    problem = {"name": name, "test_size": metrics["test_size"], "num_classes": metrics["num_classes"],
               "members": None if teacher is None else teacher["members"],
               "probe_name": (ood or "OOD") if metrics["ood_size"] else None,
               "probe_size": metrics["ood_size"]}
    evaluation = {"kind": KIND, "task": metrics["task"], "schema": SCHEMA, "models": models,
                  "problem": problem, "settings": metrics["settings"], "record": metrics["record"]}
    if metrics.get("members") is not None:
        evaluation["members"] = metrics["members"]
    return evaluation


def teacher_student_view(evaluation: dict[str, Any]) -> dict[str, Any]:
    """A held-out evaluation as `evaluate_held_out` gave it (the student's row under ``student``), the
    form of a distillation's ``report.md`` and its far-from-the-teacher check (`hydraplus.report.distil`)."""
    rows = evaluation["models"]
    student = next(key for key, row in rows.items() if "spec" in row)
    problem = evaluation["problem"]
    view = {"task": evaluation["task"], "num_classes": problem["num_classes"],
            "test_size": problem["test_size"], "ood_size": problem["probe_size"],
            "settings": evaluation["settings"], "record": evaluation.get("record", {}),
            "models": {("student" if key == student else key): row for key, row in rows.items()}}
    if evaluation.get("members") is not None:
        view["members"] = evaluation["members"]
    return view
