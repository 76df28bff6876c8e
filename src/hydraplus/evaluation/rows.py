"""One model's row, computed the same way by every suite: from a model's outputs on the test data (and,
where the suite has them, on OOD inputs and the validation split, the inputs its uncertainty histograms
are compared on, and its cost) the groups of metrics that every evaluation shares, each group's keys
exactly those its definitions list (`hydraplus.metrics.section`); `laid_out` puts them in a row.

The suites differ only in what is theirs alone: the image suite's shifted test sets and fidelity to
the ensemble, the toy suite's off-data probe measures, the held-out suite's member rows from the
teacher's outputs and the student's agreement with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from hydraplus.core.calibration import temperature_metrics
from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics
from hydraplus.core.ood import detection_scores, ood_detection
from hydraplus.core.selective import selective_metrics
from hydraplus.core.uncertainty import (
    classification_uncertainty,
    log_predictive,
    regression_uncertainty,
    total_variation,
)
from hydraplus.data.problem import Problem
from hydraplus.evaluation.predictions import Predictions
from hydraplus.metrics import section, where

CLASSIFICATION = "classification"
UNCERTAINTIES = ("predictive", "aleatoric", "epistemic")
RELIABILITY_BINS = 10  # the ECE's (and the reliability diagrams') equal-width bins
TV_BINS = 50  # the bins of the histograms whose total variation is measured

Groups = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Histograms:
    """A model's and the reference's (the ensemble's or teacher's) uncertainties on the inputs a suite
    compares them on, and each uncertainty's histogram range ``[0, upper]``."""

    model: Mapping[str, Tensor]
    reference: Mapping[str, Tensor]
    upper: Mapping[str, float]


def uncertainty(task: str, outputs: Tensor) -> dict[str, Tensor]:
    """Per input the predictive, aleatoric and epistemic uncertainty (entropies, or variances)."""
    if task == CLASSIFICATION:
        return classification_uncertainty(outputs)
    return regression_uncertainty(outputs)


def validation_outputs(model: nn.Module, problem: Problem, precision: str = "32"
                       ) -> tuple[Tensor, Tensor] | None:
    """The model's outputs on the problem's validation split and its targets, for temperature scaling
    (None without a validation split: never fitted on the test set). A sampling model's draws leave
    the random state as it was, so the other measures draw the same samples as without these."""
    if len(problem.x_val) == 0:
        return None
    return Predictions(problem.x_val, precision, keep_rng=True)(model), problem.y_val


def test_groups(task: str, outputs: Tensor, y: Tensor) -> Groups:
    """The test metrics of outputs ``[B, K, D]`` on targets ``y``: classification (error, ECE with 10
    and 15 bins, NLL, Brier, entropies) and selective prediction, or regression."""
    if task == CLASSIFICATION:
        metrics: ClassificationMetrics | RegressionMetrics = ClassificationMetrics(
            outputs.shape[-1], n_bins=RELIABILITY_BINS)
        metrics.update(outputs, y)
        return {task: section(task, metrics.compute()),
                "selective": section("selective", selective_metrics(outputs, y))}
    metrics = RegressionMetrics()
    metrics.update(outputs, y)
    return {task: section(task, metrics.compute())}


def temperature(val_outputs: Tensor, y_val: Tensor, outputs: Tensor, y: Tensor) -> dict[str, float]:
    """ECE and NLL on the test ``outputs`` after one temperature fitted on the validation split."""
    return section("temperature", temperature_metrics(log_predictive(val_outputs), y_val,
                                                      log_predictive(outputs), y, RELIABILITY_BINS))


def ood(task: str, outputs: Tensor, ood_outputs: Tensor) -> dict[str, float]:
    """OOD detection: every score of a classifier (`ood_detection`), or a regression model's predictive
    and epistemic variance."""
    if task == CLASSIFICATION:
        return section("ood", ood_detection(outputs, ood_outputs), task)
    inside, outside = regression_uncertainty(outputs), regression_uncertainty(ood_outputs)
    return section("ood", {f"{measure}_{key}": value for measure in ("predictive", "epistemic")
                           for key, value in detection_scores(inside[measure], outside[measure]).items()},
                   task)


def tv(histograms: Histograms) -> dict[str, float]:
    """The total variation between the model's and the reference's histogram of each uncertainty (0
    where the range is empty)."""
    return section("tv", {
        k: total_variation(histograms.model[k], histograms.reference[k], histograms.upper[k], TV_BINS)
        if histograms.upper[k] > 0 else 0.0 for k in UNCERTAINTIES})


def row_groups(task: str, outputs: Tensor, y: Tensor, *, ood_outputs: Tensor | None = None,
               validation: tuple[Tensor, Tensor] | None = None, histograms: Histograms | None = None,
               profile: Mapping[str, float] | None = None, batch_sizes: Sequence[int] = ()) -> Groups:
    """The shared groups of one model's row: test metrics (`test_groups`), temperature scaling given
    its ``validation`` outputs and targets (classification), OOD detection given ``ood_outputs``, the
    total variation of its uncertainty ``histograms`` and its ``profile`` (parameters, FLOPs and
    latency at ``batch_sizes``)."""
    groups = test_groups(task, outputs, y)
    if validation is not None and task == CLASSIFICATION:
        groups["temperature"] = temperature(*validation, outputs, y)
    if ood_outputs is not None:
        groups["ood"] = ood(task, outputs, ood_outputs)
    if histograms is not None:
        groups["tv"] = tv(histograms)
    if profile is not None:
        groups["profile"] = section("profile", profile, batch_sizes=batch_sizes)
    return groups


def laid_out(groups: Groups, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """``groups`` put in ``row`` (a new one by default) where every evaluation keeps them
    (`hydraplus.metrics.PLACES`)."""
    row = {} if row is None else row
    for group, values in groups.items():
        for key, value in values.items():
            *parents, last = where(group, key)
            node = row
            for step in parents:
                node = node.setdefault(step, {})
            node[last] = value
    return row
