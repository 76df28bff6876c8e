"""The toy suite: evaluate every model of a toy run: test metrics (classification: also selective
prediction and temperature scaling fitted on the validation split; regression: also central-interval
coverage), off-data uncertainty, cost, and how close each student's uncertainty histograms are to
the ensemble's; each member alone too."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics
from hydraplus.core.predict import predict
from hydraplus.core.profile import count_flops, count_params
from hydraplus.core.selective import selective_metrics
from hydraplus.core.uncertainty import (
    classification_uncertainty,
    predictive_gaussian,
    regression_uncertainty,
    total_variation,
)
from hydraplus.data.toy import REGRESSION_RANGE, ToyProblem
from hydraplus.evaluation.images import calibrated, calibrated_from
from hydraplus.evaluation.members import member_outputs, member_scores, summarize, with_members

if TYPE_CHECKING:
    from hydraplus.evaluation import Models, Settings

OFF_DATA_DISTANCE = 5.0
UNCERTAINTIES = ("predictive", "aleatoric", "epistemic")


@dataclass
class ToyEvaluation:
    """Per-model metrics plus the probe-set uncertainties used by the figures."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # the models', not the members'
    off_data: Tensor | None = None
    members: dict[str, Any] | None = None  # every member's row and how the best was chosen


@dataclass
class ToySuite:
    """A toy problem's test set and probe grid: `evaluate_toy` on every model, as the evaluation schema
    (`toy_evaluation`)."""

    problem: ToyProblem
    kind: str = "toy"

    def evaluate(self, models: Models, settings: Settings) -> dict[str, Any]:
        toy = evaluate_toy(self.problem, models.models, models.train_seconds, seed=settings.seed,
                           precision=settings.precision, members=models.members,
                           early_stopping=models.early_stopping)
        return toy_evaluation(toy.metrics, self.problem.task, self.problem.name, toy.members)


def toy_evaluation(rows: dict[str, dict[str, Any]], task: str, name: str,
                   members: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evaluation of a toy run from its metrics ``rows`` (one per model); ``name`` is the toy
    problem's (``"spiral"`` or ``"regression"``, `ToyProblem.name`); ``members`` the member record
    (`ToyEvaluation.members`)."""
    evaluation = {"kind": "toy", "task": task, "models": rows, "problem": {"name": name}, "settings": {}}
    if members is not None:
        evaluation["members"] = members
    return evaluation


def off_data_mask(problem: ToyProblem) -> Tensor:
    """Probe points away from the data: grid points farther than 5 from every training
    point (spiral), or x outside the training range [-6, 6] (regression)."""
    if problem.task == "classification":
        return torch.cdist(problem.x_probe, problem.x_train).min(dim=1).values > OFF_DATA_DISTANCE
    return problem.x_probe[:, 0].abs() > REGRESSION_RANGE


def _probe_uncertainty(problem: ToyProblem, out: Tensor) -> dict[str, Tensor]:
    if problem.task == "classification":
        return classification_uncertainty(out)
    unc = {k: v.sqrt() for k, v in regression_uncertainty(out).items()}
    unc["mean"] = predictive_gaussian(out)[0]
    return unc


def evaluate_toy(problem: ToyProblem, models: dict[str, nn.Module],
                 train_seconds: dict[str, float] | None = None, seed: int = 0,
                 precision: str = "32", members: Sequence[nn.Module] | None = None,
                 early_stopping: dict[str, dict[str, Any]] | None = None) -> ToyEvaluation:
    """Evaluate ``models`` (one must be the ensemble) on the toy problem.

    Sampling students draw from the seeded generator, so an evaluation is repeatable and
    leaves the caller's random state untouched. Each member is scored alone from its slice of the
    ensemble's outputs (`hydraplus.evaluation.members`): rows ``member`` and ``member-best`` after
    the ensemble, and every member's row in `ToyEvaluation.members`; ``members`` (each a one-member
    model, `Ensemble.member`) adds their parameters and FLOPs. ``early_stopping`` records (per
    student) are kept in the students' rows.
    """
    if "ensemble" not in models:
        raise ValueError("evaluate_toy needs the 'ensemble' among the models")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _evaluate(problem, models, train_seconds, precision, members, early_stopping or {})


def _scores(problem: ToyProblem, out: Tensor, probe_out: Tensor, off_data: Tensor,
            calibration: dict[str, float]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """One model's test metrics (with the ``calibration`` ones, `calibrated`) and off-data uncertainty
    from its test and probe outputs."""
    if problem.task == "classification":
        test: ClassificationMetrics | RegressionMetrics = ClassificationMetrics(problem.num_outputs)
    else:
        test = RegressionMetrics()
    test.update(out, problem.y_test)
    row: dict[str, Any] = test.compute()
    if problem.task == "classification":
        row.update(selective_metrics(out, problem.y_test))
        row.update(calibration)
    unc = _probe_uncertainty(problem, probe_out)
    row["offdata_epistemic"] = unc["epistemic"][off_data].mean().item()
    row["ondata_epistemic"] = unc["epistemic"][~off_data].mean().item()
    if problem.task == "regression" and problem.y_probe is not None:
        oor = RegressionMetrics()
        oor.update(probe_out, problem.y_probe)
        row.update({f"oor_{k}": v for k, v in oor.compute().items() if k in ("rmse", "nll")})
    return row, unc


def _add_tv(problem: ToyProblem, row: dict[str, Any], unc: dict[str, Tensor],
            reference: dict[str, Tensor]) -> None:
    """The total variation between each of the model's uncertainty histograms and the ensemble's."""
    for kind in UNCERTAINTIES:
        if problem.task == "classification":
            upper = math.log(problem.num_outputs)
        else:
            upper = max(reference[kind].max().item(), unc[kind].max().item(), 1e-12)
        row[f"tv_{kind}"] = total_variation(unc[kind], reference[kind], upper)


def _evaluate(problem: ToyProblem, models: dict[str, nn.Module], train_seconds: dict[str, float] | None,
              precision: str, members: Sequence[nn.Module] | None,
              early_stopping: dict[str, dict[str, Any]]) -> ToyEvaluation:
    result = ToyEvaluation(off_data=off_data_mask(problem))
    assert result.off_data is not None
    example = problem.x_test[:1]
    outputs: dict[str, tuple[Tensor, Tensor]] = {}
    for name, model in models.items():
        out = predict(model, problem.x_test, precision=precision)
        probe_out = predict(model, problem.x_probe, precision=precision)
        calibration = calibrated(model, problem, out, precision) if problem.task == "classification" else {}
        row, result.probe[name] = _scores(problem, out, probe_out, result.off_data, calibration)
        outputs[name] = (out, probe_out)
        row["params"] = count_params(model)
        row["flops"] = count_flops(model, example)
        if train_seconds and name in train_seconds:
            row["train_seconds"] = train_seconds[name]
        if name in early_stopping:
            row["early_stopping"] = early_stopping[name]
        result.metrics[name] = row
    reference = result.probe["ensemble"]
    for name, unc in result.probe.items():
        _add_tv(problem, result.metrics[name], unc, reference)
    member_rows = []
    out, probe_out = outputs["ensemble"]
    val_out = predict(models["ensemble"], problem.x_val, precision=precision)
    for i, (member_out, member_probe) in enumerate(zip(member_outputs(out), member_outputs(probe_out),
                                                        strict=True)):
        calibration = (calibrated_from(val_out[:, i : i + 1], problem, member_out)
                       if problem.task == "classification" else {})
        row, unc = _scores(problem, member_out, member_probe, result.off_data, calibration)
        if members is not None:
            row["params"], row["flops"] = count_params(members[i]), count_flops(members[i], example)
        _add_tv(problem, row, unc, reference)
        member_rows.append(row)
    scores = member_scores(val_out, problem.y_val, problem.task)
    unit = "error" if problem.task == "classification" else "RMSE"
    selected_by = f"validation {unit} ({len(problem.x_val)} points; ties: validation NLL)"
    rows, result.members = summarize(member_rows, scores, selected_by)
    result.metrics = with_members(result.metrics, rows)
    return result
