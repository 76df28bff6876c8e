"""The toy suite: evaluate every model of a toy run: test metrics (classification: also selective
prediction and temperature scaling fitted on the validation split; regression: also central-interval
coverage), off-data uncertainty (under ``probe``), cost, and how close each student's uncertainty
histograms are to the ensemble's; each member alone too. Rows are laid out as every evaluation's
(`hydraplus.metrics.PLACES`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from hydraplus.core.metrics import RegressionMetrics
from hydraplus.core.predict import predict
from hydraplus.core.profile import count_flops, count_params
from hydraplus.core.uncertainty import classification_uncertainty, predictive_gaussian, regression_uncertainty
from hydraplus.data.toy import REGRESSION_RANGE, ToyProblem
from hydraplus.evaluation.members import member_outputs, member_scores, summarize, with_members
from hydraplus.evaluation.rows import UNCERTAINTIES, Histograms, laid_out, row_groups, validation_outputs
from hydraplus.metrics import SCHEMA, section

if TYPE_CHECKING:
    from hydraplus.evaluation import Models, Settings

OFF_DATA_DISTANCE = 5.0
KIND = "toy"


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
    kind: str = KIND

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
    evaluation = {"kind": KIND, "task": task, "schema": SCHEMA, "models": rows, "problem": {"name": name},
                  "settings": {}}
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


def _toy_measures(problem: ToyProblem, probe_out: Tensor, unc: dict[str, Tensor], off_data: Tensor
                  ) -> dict[str, float]:
    """What the toy suite alone measures (group ``toy``) from a model's probe outputs and their
    uncertainties ``unc``: the mean epistemic uncertainty off and on the data and, where the probe's
    targets are known, RMSE and NLL over the whole probe range."""
    measures = {"offdata_epistemic": unc["epistemic"][off_data].mean().item(),
                "ondata_epistemic": unc["epistemic"][~off_data].mean().item()}
    if problem.task == "regression" and problem.y_probe is not None:
        oor = RegressionMetrics()
        oor.update(probe_out, problem.y_probe)
        measures.update({f"oor_{k}": v for k, v in oor.compute().items() if k in ("rmse", "nll")})
    return section("toy", measures, problem.task)


def _upper(problem: ToyProblem, unc: dict[str, Tensor], reference: dict[str, Tensor]) -> dict[str, float]:
    """The histogram range of each probe uncertainty: ``log C`` (entropies), or the larger maximum of
    the model's and the ensemble's stds."""
    if problem.task == "classification":
        return dict.fromkeys(UNCERTAINTIES, math.log(problem.num_outputs))
    return {k: max(reference[k].max().item(), unc[k].max().item(), 1e-12) for k in UNCERTAINTIES}


def _row(problem: ToyProblem, out: Tensor, probe_out: Tensor, off_data: Tensor, reference: dict[str, Tensor],
         validation: tuple[Tensor, Tensor] | None, profile: dict[str, float] | None) -> dict[str, Any]:
    """One model's row from its test and probe outputs (``validation``: its validation outputs and
    targets, for temperature scaling; ``reference``: the ensemble's probe uncertainties)."""
    unc = _probe_uncertainty(problem, probe_out)
    histograms = Histograms(unc, reference, _upper(problem, unc, reference))
    groups = row_groups(problem.task, out, problem.y_test, validation=validation, histograms=histograms,
                        profile=profile)
    return laid_out({**groups, "toy": _toy_measures(problem, probe_out, unc, off_data)})


def _evaluate(problem: ToyProblem, models: dict[str, nn.Module], train_seconds: dict[str, float] | None,
              precision: str, members: Sequence[nn.Module] | None,
              early_stopping: dict[str, dict[str, Any]]) -> ToyEvaluation:
    result = ToyEvaluation(off_data=off_data_mask(problem))
    assert result.off_data is not None
    classification = problem.task == "classification"
    example = problem.x_test[:1]
    outputs: dict[str, tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]] = {}
    profiles: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        out = predict(model, problem.x_test, precision=precision)
        probe_out = predict(model, problem.x_probe, precision=precision)
        validation = validation_outputs(model, problem, precision) if classification else None
        outputs[name] = (out, probe_out, validation)
        profiles[name] = {"params": count_params(model), "flops": count_flops(model, example)}
        result.probe[name] = _probe_uncertainty(problem, probe_out)
    reference = result.probe["ensemble"]
    for name, (out, probe_out, validation) in outputs.items():
        row = _row(problem, out, probe_out, result.off_data, reference, validation, profiles[name])
        if train_seconds and name in train_seconds:
            laid_out({"train": section("train", {"train_seconds": train_seconds[name]})}, row)
        if name in early_stopping:
            row["early_stopping"] = early_stopping[name]
        result.metrics[name] = row
    member_rows = []
    out, probe_out, _ = outputs["ensemble"]
    val_out = predict(models["ensemble"], problem.x_val, precision=precision)
    for i, (member_out, member_probe) in enumerate(zip(member_outputs(out), member_outputs(probe_out),
                                                        strict=True)):
        validation = (val_out[:, i : i + 1], problem.y_val) if classification else None
        profile = (None if members is None
                   else {"params": count_params(members[i]), "flops": count_flops(members[i], example)})
        member_rows.append(_row(problem, member_out, member_probe, result.off_data, reference, validation,
                                profile))
    scores = member_scores(val_out, problem.y_val, problem.task)
    unit = "error" if problem.task == "classification" else "RMSE"
    selected_by = f"validation {unit} ({len(problem.x_val)} points; ties: validation NLL)"
    rows, result.members = summarize(member_rows, scores, selected_by)
    result.metrics = with_members(result.metrics, rows)
    return result
