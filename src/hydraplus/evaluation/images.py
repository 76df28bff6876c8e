"""The image suite: evaluate every model of an image run (docs/method.md#metrics): clean and shifted
test metrics (the four paper shifts and two corruptions, five levels each; clean also after
temperature scaling fitted on the validation split), out-of-distribution detection,
cost, a reliability diagram, the risk-coverage curve, per-input fidelity to the ensemble, and
the uncertainty histograms under the paper's 30% vertical shift with each model's total
variation to the ensemble's.

The result is plain JSON data::

    {"problem": {...}, "settings": {...},
     "models": {name: {"clean": {...}, "shifts": {kind: [level 1, ..., level 5]}, "ood": {...},
                       "profile": {...}, "reliability": {...}, "risk_coverage": {...},
                       "fidelity": {"clean": {...}, "shifts": {kind: [...]}},  # not the ensemble
                       "tv": {...}, "shift_histograms": {...},  # under the 30% vertical shift
                       "early_stopping": {...}}},  # a stopped student's
     "members": {"count", "best", "selected_by", "scores", "rows": [each member's row]}}

``models`` has the rows ``member`` (mean over the members) and ``member-best`` after the ensemble
(`hydraplus.evaluation.members`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from hydraplus.core.calibration import confidence_bins
from hydraplus.core.fidelity import fidelity
from hydraplus.core.metrics import ClassificationMetrics
from hydraplus.core.profile import profile_model
from hydraplus.core.selective import confidence_errors, risk_at, risk_coverage_curve
from hydraplus.core.uncertainty import classification_uncertainty, histogram
from hydraplus.data.images import ImageProblem
from hydraplus.data.shift import DISTORTIONS, SHIFTS, distort_images
from hydraplus.evaluation.members import member_outputs, member_scores, summarize, with_members
from hydraplus.evaluation.predictions import Predictions
from hydraplus.evaluation.rows import (
    CLASSIFICATION,
    RELIABILITY_BINS,
    TV_BINS,
    UNCERTAINTIES,
    Histograms,
    laid_out,
    row_groups,
    test_groups,
)
from hydraplus.evaluation.spread import record_scales, with_spread_scaled
from hydraplus.metrics import SCHEMA, section

if TYPE_CHECKING:
    from hydraplus.evaluation import Models, Settings

KIND = "image"
HISTOGRAM_SHIFT = ("vertical", 3)  # the paper's 30% vertical shift
HISTOGRAM_BINS = TV_BINS
RISK_COVERAGE_POINTS = 50  # coverages 2%, 4%, ..., 100% (the same for every run, so seeds pool)
LATENCY_BATCH_SIZES = (1, 256)


@dataclass
class ImageSuite:
    """An image problem's test set, its shifts and corruptions (unless ``shifts`` is False) and its
    OOD set: `evaluate_images` on every model (each moved to the settings' device)."""

    problem: ImageProblem
    shifts: bool = True
    kind: str = KIND

    def evaluate(self, models: Models, settings: Settings) -> dict[str, Any]:
        moved = {name: model.to(settings.device) for name, model in models.models.items()}
        models, scales = with_spread_scaled(replace(models, models=moved), self.problem.x_val,
                                            "classification", settings.precision)
        on_device = models.models
        members = None if models.members is None else [m.to(settings.device) for m in models.members]
        evaluation = evaluate_images(self.problem, on_device, shifts=self.shifts,
                                     latency_batch_sizes=settings.latency_batches,
                                     train_seconds=models.train_seconds, seed=settings.seed,
                                     precision=settings.precision, members=members,
                                     early_stopping=models.early_stopping)
        return record_scales({"kind": self.kind, "task": "classification", "schema": SCHEMA, **evaluation},
                             scales)


def classification_metrics(logits: Tensor, target: Tensor, num_classes: int) -> dict[str, float]:
    """Error, ECE (10 and 15 bins), NLL, Brier and mean entropies of K-sample logits ``[B, K, C]``."""
    metrics = ClassificationMetrics(num_classes, n_bins=RELIABILITY_BINS)
    metrics.update(logits, target)
    return metrics.compute()


def risk_coverage(logits: Tensor, target: Tensor, points: int = RISK_COVERAGE_POINTS) -> dict[str, list]:
    """The risk-coverage curve at coverages ``1/points, 2/points, ..., 1``: the selective risk of
    the ``ceil(coverage * n)`` most confident inputs (ties averaged, see `selective_risks`)."""
    _, risk = risk_coverage_curve(logits, target)
    coverage = [(i + 1) / points for i in range(points)]
    return {"coverage": coverage, "risk": [risk_at(risk, c) for c in coverage]}


def reliability(logits: Tensor, target: Tensor, bins: int = RELIABILITY_BINS) -> dict[str, list]:
    """The ECE's equal-width confidence bins (`confidence_bins`) of the mean prediction: per bin the
    count, mean confidence and accuracy (None for an empty bin)."""
    confidence, errors = confidence_errors(logits, target)
    counts, conf_sum, correct_sum = confidence_bins(confidence, ~errors, bins)
    counts = counts.tolist()
    return {
        "count": counts,
        "confidence": [s / n if n else None for s, n in zip(conf_sum.tolist(), counts, strict=True)],
        "accuracy": [s / n if n else None for s, n in zip(correct_sum.tolist(), counts, strict=True)],
    }


def _histograms(uncertainty: dict[str, Tensor], upper: float) -> dict[str, list[float]]:
    """The normalised histograms of each uncertainty (`HISTOGRAM_BINS` bins over ``[0, upper]``)."""
    return {k: histogram(uncertainty[k], HISTOGRAM_BINS, upper).tolist() for k in UNCERTAINTIES}


def _clean_row(logits: Tensor, target: Tensor, reference: Tensor | None) -> dict[str, Any]:
    """What the image suite alone measures on the clean test set: reliability, risk-coverage and
    fidelity to ``reference`` (the ensemble's logits; None for the ensemble itself)."""
    row: dict[str, Any] = {"reliability": reliability(logits, target),
                           "risk_coverage": risk_coverage(logits, target)}
    if reference is not None:
        row["fidelity"] = {"clean": section("fidelity", fidelity(logits, reference))}
    return row


def _shifted(row: dict[str, Any], kind: str, logits: Tensor, target: Tensor,
             reference: Tensor | None) -> None:
    """Append one shift level's test metrics (and fidelity to ``reference``) to ``row``."""
    metrics = {key: value for group in test_groups(CLASSIFICATION, logits, target).values()
               for key, value in group.items()}
    row.setdefault("shifts", {}).setdefault(kind, []).append(metrics)
    if reference is not None:
        row["fidelity"].setdefault("shifts", {}).setdefault(kind, []).append(
            section("fidelity", fidelity(logits, reference)))


def evaluate_images(problem: ImageProblem, models: dict[str, nn.Module], *, shifts: bool = True,
                    latency: bool = True, latency_batch_sizes: Sequence[int] = LATENCY_BATCH_SIZES,
                    train_seconds: dict[str, float] | None = None, seed: int = 0,
                    precision: str = "32", members: Sequence[nn.Module] | None = None,
                    early_stopping: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Evaluate ``models`` (one must be the ``ensemble``) on the problem's test set, in ``precision``.

    ``shifts`` adds the six distortions (`DISTORTIONS`) at five levels, Gaussian noise drawn from
    ``seed``, and the vertical-shift histograms; OOD detection needs ``problem.x_probe``. Every
    other model's fidelity to the ensemble is measured on the same inputs. Sampling students draw
    from a generator seeded with ``seed`` (the caller's random state is left untouched). Models run
    on their own device. Each member is scored alone from its slice of the ensemble's outputs
    (`hydraplus.evaluation.members`): rows ``member`` and ``member-best`` and, under ``members``,
    every member's row; ``members`` (each a one-member model, `Ensemble.member`) adds their cost.
    ``early_stopping`` records (per student) are kept in the students' rows.
    """
    if "ensemble" not in models:
        raise ValueError("evaluate_images needs the 'ensemble' among the models")
    if len(problem.x_test) == 0:
        raise ValueError(f"{problem.name}: the test set is empty")
    num_classes = problem.num_outputs
    upper = math.log(num_classes)
    batch_sizes = [int(b) for b in latency_batch_sizes] if latency else []
    order = ["ensemble", *(name for name in models if name != "ensemble")]  # the reference first
    results: dict[str, dict[str, Any]] = {name: {} for name in models}
    outputs: dict[str, tuple[Tensor, Tensor | None, tuple[Tensor, Tensor] | None]] = {}  # test, probe, val
    profiles: dict[str, dict[str, float]] = {}
    shifted_unc: dict[str, dict[str, Tensor]] = {}
    member_unc: list[dict[str, Tensor]] = []
    test = Predictions(problem.x_test, precision)
    probes = None if problem.x_probe is None else Predictions(problem.x_probe, precision)
    val = Predictions(problem.x_val, precision, keep_rng=True) if len(problem.x_val) else None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        reference: Tensor | None = None
        for name in order:
            model = models[name]
            logits = test(model)
            probe = None if probes is None else probes(model)
            outputs[name] = (logits, probe, None if val is None else (val(model), problem.y_val))
            results[name].update(_clean_row(logits, problem.y_test, reference))
            if reference is None:
                reference = logits
            profiles[name] = profile_model(model, problem.x_test[:1], batch_sizes, precision=precision)
            if train_seconds and name in train_seconds:
                results[name]["train_seconds"] = train_seconds[name]
            if early_stopping and name in early_stopping:
                results[name]["early_stopping"] = early_stopping[name]
        assert reference is not None
        val_logits = None if outputs["ensemble"][2] is None else outputs["ensemble"][2][0]
        member_rows = [_clean_row(out, problem.y_test, reference) for out in member_outputs(reference)]
        if shifts:
            for kind, magnitudes in DISTORTIONS.items():
                for level in range(1, len(magnitudes) + 1):
                    x = problem.normalize(distort_images(problem.x_test_raw, kind, level, seed))
                    shifted = Predictions(x, precision)
                    ensemble_logits: Tensor | None = None
                    for name in order:
                        logits = shifted(models[name])
                        _shifted(results[name], kind, logits, problem.y_test, ensemble_logits)
                        if ensemble_logits is None:
                            ensemble_logits = logits
                        if (kind, level) == HISTOGRAM_SHIFT:
                            shifted_unc[name] = classification_uncertainty(logits)
                    assert ensemble_logits is not None
                    for i, out in enumerate(member_outputs(ensemble_logits)):
                        _shifted(member_rows[i], kind, out, problem.y_test, ensemble_logits)
                        if (kind, level) == HISTOGRAM_SHIFT:
                            member_unc.append(classification_uncertainty(out))
    uppers = dict.fromkeys(UNCERTAINTIES, upper)
    for name in order:
        logits, probe, validation = outputs[name]
        histograms = Histograms(shifted_unc[name], shifted_unc["ensemble"], uppers) if shifts else None
        laid_out(row_groups(CLASSIFICATION, logits, problem.y_test, ood_outputs=probe, validation=validation,
                            histograms=histograms, profile=profiles[name], batch_sizes=batch_sizes),
                 results[name])
        if shifts:
            results[name]["shift_histograms"] = _histograms(shifted_unc[name], upper)
    reference_probe = outputs["ensemble"][1]
    for i, out in enumerate(member_outputs(reference)):
        histograms = Histograms(member_unc[i], shifted_unc["ensemble"], uppers) if shifts else None
        profile = (None if members is None  # deterministic members: no random numbers drawn
                   else profile_model(members[i], problem.x_test[:1], batch_sizes, precision=precision))
        ood_outputs = None if reference_probe is None else reference_probe[:, i : i + 1]
        validation = None if val_logits is None else (val_logits[:, i : i + 1], problem.y_val)
        laid_out(row_groups(CLASSIFICATION, out, problem.y_test, ood_outputs=ood_outputs,
                            validation=validation, histograms=histograms, profile=profile,
                            batch_sizes=batch_sizes),
                 member_rows[i])
        if shifts:
            member_rows[i]["shift_histograms"] = _histograms(member_unc[i], upper)
    if val_logits is not None:
        scores = member_scores(val_logits, problem.y_val, "classification")
        selected_by = f"validation error ({len(problem.x_val):,} images; ties: validation NLL)"
    else:
        scores = {key: [row["clean"][key] for row in member_rows] for key in ("error", "nll")}
        selected_by = "test error (no validation split; ties: test NLL)"
    member_models, member_record = summarize(member_rows, scores, selected_by)
    hist_kind, hist_level = HISTOGRAM_SHIFT
    described = {"name": problem.name, "num_classes": num_classes, "test_size": len(problem.x_test),
                 "probe_name": problem.probe_name,
                 "probe_size": None if problem.x_probe is None else len(problem.x_probe)}
    if problem.held_out_classes:  # original labels left out of training (the OOD set)
        described["held_out_classes"] = problem.held_out_classes
    return {
        "problem": described,
        "settings": {"shifts": shifts, "shift_levels": {k: list(v) for k, v in DISTORTIONS.items()},
                     "corruptions": [k for k in DISTORTIONS if k not in SHIFTS], "noise_seed": seed,
                     "histogram": {"kind": hist_kind, "level": hist_level,
                                   "magnitude": SHIFTS[hist_kind][hist_level - 1],
                                   "bins": HISTOGRAM_BINS, "upper": upper},
                     "reliability_bins": RELIABILITY_BINS, "ece_bins": [RELIABILITY_BINS, 15],
                     "ece_adaptive_bins": RELIABILITY_BINS, "val_size": len(problem.x_val),
                     "risk_coverage_points": RISK_COVERAGE_POINTS, "fidelity_reference": "ensemble",
                     "latency_batch_sizes": batch_sizes, "seed": seed},
        "models": with_members({name: results[name] for name in models}, member_models),
        "members": member_record,
    }
