"""Evaluate every model of a toy run: test metrics (classification: also selective prediction and
temperature scaling fitted on the validation split; regression: also central-interval coverage),
off-data uncertainty, cost, and how close each student's uncertainty histograms are to the ensemble's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
from hydraplus.experiments.image_eval import calibrated

OFF_DATA_DISTANCE = 5.0
UNCERTAINTIES = ("predictive", "aleatoric", "epistemic")


@dataclass
class ToyEvaluation:
    """Per-model metrics plus the probe-set uncertainties used by the figures."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    probe: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    off_data: Tensor | None = None


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
                 precision: str = "32") -> ToyEvaluation:
    """Evaluate ``models`` (one must be the ensemble) on the toy problem.

    Sampling students draw from the seeded generator, so an evaluation is repeatable and
    leaves the caller's random state untouched.
    """
    if "ensemble" not in models:
        raise ValueError("evaluate_toy needs the 'ensemble' among the models")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _evaluate(problem, models, train_seconds, precision)


def _evaluate(problem: ToyProblem, models: dict[str, nn.Module],
              train_seconds: dict[str, float] | None, precision: str) -> ToyEvaluation:
    result = ToyEvaluation(off_data=off_data_mask(problem))
    example = problem.x_test[:1]
    for name, model in models.items():
        if problem.task == "classification":
            test = ClassificationMetrics(problem.num_outputs)
        else:
            test = RegressionMetrics()
        out = predict(model, problem.x_test, precision=precision)
        test.update(out, problem.y_test)
        row: dict[str, Any] = test.compute()
        if problem.task == "classification":
            row.update(selective_metrics(out, problem.y_test))
            row.update(calibrated(model, problem, out, precision))
        probe_out = predict(model, problem.x_probe, precision=precision)
        unc = _probe_uncertainty(problem, probe_out)
        result.probe[name] = unc
        row["offdata_epistemic"] = unc["epistemic"][result.off_data].mean().item()
        row["ondata_epistemic"] = unc["epistemic"][~result.off_data].mean().item()
        if problem.task == "regression" and problem.y_probe is not None:
            oor = RegressionMetrics()
            oor.update(probe_out, problem.y_probe)
            row.update({f"oor_{k}": v for k, v in oor.compute().items() if k in ("rmse", "nll")})
        row["params"] = count_params(model)
        row["flops"] = count_flops(model, example)
        if train_seconds and name in train_seconds:
            row["train_seconds"] = train_seconds[name]
        result.metrics[name] = row
    reference = result.probe["ensemble"]
    for name, unc in result.probe.items():
        for kind in UNCERTAINTIES:
            if problem.task == "classification":
                upper = math.log(problem.num_outputs)
            else:
                upper = max(reference[kind].max().item(), unc[kind].max().item(), 1e-12)
            result.metrics[name][f"tv_{kind}"] = total_variation(unc[kind], reference[kind], upper)
    return result
