"""Dataset-level metrics: float64 sums over batches (never averages of batch means), and for the
ECEs the per-input confidences.

Evaluation runs on one process with the full data (global rank 0 of a multi-process run), so the
metrics never sync their state with other processes (``LOCAL``), even while a process group exists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from hydraplus.core.calibration import adaptive_calibration_error, expected_calibration_error
from hydraplus.core.checks import check_finite, check_labels
from hydraplus.core.uncertainty import (
    classification_uncertainty,
    log_predictive,
    predictive_gaussian,
    regression_uncertainty,
)

LOCAL = {"sync_on_compute": False}  # torchmetrics settings: compute on this process's state alone
INTERVALS = (50, 90, 95)  # central intervals (%) of the regression predictive Gaussian


class _SumMetric(Metric):
    """Sum of per-example values and their count, so compute() is the dataset mean."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__(**LOCAL)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, values: Tensor) -> None:
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        if self.count == 0:
            raise ValueError(f"{type(self).__name__}: no examples were seen")
        return self.total / self.count


class _PerInputMean(_SumMetric):
    """The dataset mean of per-input values (float64 sums)."""

    def update(self, values: Tensor) -> None:
        self._add(values)


class GaussianNLL(_SumMetric):
    """Mean Gaussian NLL (with the 0.5 log 2 pi constant) of a predictive mean and variance."""

    def update(self, mean: Tensor, var: Tensor, target: Tensor) -> None:
        y = target.reshape(-1).to(mean)
        self._add(0.5 * (var.log() + (y - mean).pow(2) / var + math.log(2 * math.pi)))


class ClassificationMetrics:
    """Error, ECE, adaptive ECE, NLL, Brier and mean uncertainties of K-sample predictions
    (docs/method.md#metrics), all from the predictive distribution in float64.

    Two ECEs with equal-width bins of the top-1 confidence (`hydraplus.core.calibration`): ``ece``
    with ``n_bins`` bins (10 by default, the bins of the reliability diagrams) and ``ece_15`` with
    15, the other count in common use; ``ece_adaptive`` with ``n_bins`` equal-mass bins. The
    per-input confidences are kept (the adaptive ECE sorts them all).
    """

    def __init__(self, num_classes: int, n_bins: int = 10):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes, self.n_bins = num_classes, n_bins
        self.confidence: list[Tensor] = []
        self.correct: list[Tensor] = []
        self.nll, self.brier = _PerInputMean(), _PerInputMean()
        self.entropies = {k: _PerInputMean() for k in ("predictive", "aleatoric", "epistemic")}

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits ``[B, K, C]`` (K members/heads/samples), target ``[B]``."""
        if logits.dim() != 3 or logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"expected logits [B, K, {self.num_classes}], got shape {tuple(logits.shape)}"
            )
        if target.shape != logits.shape[:1]:
            raise ValueError(f"targets {tuple(target.shape)} do not match logits {tuple(logits.shape)}")
        check_labels(target, self.num_classes, "targets")
        check_finite(logits, "logits")
        logits, target = logits.detach().cpu(), target.detach().long().cpu()
        log_probs = log_predictive(logits)
        probs = log_probs.exp()
        confidence, predicted = probs.max(-1)
        self.confidence.append(confidence)
        self.correct.append(predicted == target)
        self.nll.update(-log_probs.gather(1, target.unsqueeze(1)).squeeze(1))
        onehot = F.one_hot(target, self.num_classes).to(probs)
        self.brier.update((probs - onehot).pow(2).sum(-1))
        for name, values in classification_uncertainty(logits).items():
            self.entropies[name].update(values)

    def compute(self) -> dict[str, float]:
        if not self.confidence:
            raise ValueError("ClassificationMetrics: no examples were seen")
        confidence, correct = torch.cat(self.confidence), torch.cat(self.correct)
        out = {
            "error": 1.0 - correct.double().mean().item(),
            "ece": expected_calibration_error(confidence, correct, self.n_bins),
            "ece_15": expected_calibration_error(confidence, correct, 15),
            "ece_adaptive": adaptive_calibration_error(confidence, correct, self.n_bins),
            "nll": self.nll.compute().item(),
            "brier": self.brier.compute().item(),
        }
        out.update({f"{k}_entropy": m.compute().item() for k, m in self.entropies.items()})
        return out


class RegressionMetrics:
    """RMSE and MAE of the predictive mean, Gaussian NLL of the moment-matched mixture, mean stds, and
    the coverage and mean width of its central intervals (`INTERVALS`), all in float64."""

    def __init__(self) -> None:
        self.squared_error, self.absolute_error, self.nll = _PerInputMean(), _PerInputMean(), GaussianNLL()
        self.stds = {k: _PerInputMean() for k in ("predictive", "aleatoric", "epistemic")}
        self.covered = {q: _PerInputMean() for q in INTERVALS}
        self.widths = {q: _PerInputMean() for q in INTERVALS}

    def update(self, out: Tensor, target: Tensor) -> None:
        """out ``[B, K, 2]`` (mean, log-variance per member), target ``[B]``."""
        if out.dim() != 3 or out.shape[-1] != 2:
            raise ValueError(f"expected regression outputs [B, K, 2], got shape {tuple(out.shape)}")
        out, target = out.detach().cpu(), target.detach().cpu().reshape(-1).double()
        if target.shape[0] != out.shape[0]:
            raise ValueError(f"targets {tuple(target.shape)} do not match outputs {tuple(out.shape)}")
        check_finite(out, "regression outputs")
        check_finite(target, "targets")
        out = out.double()
        mean, var = predictive_gaussian(out)
        self.squared_error.update((mean - target).pow(2))
        self.absolute_error.update((mean - target).abs())
        self.nll.update(mean, var, target)
        for name, values in regression_uncertainty(out).items():
            self.stds[name].update(values.sqrt())
        std = var.sqrt()
        for q in INTERVALS:
            half = _normal_quantile(0.5 + q / 200) * std
            self.covered[q].update(((target - mean).abs() <= half).double())
            self.widths[q].update(2 * half)

    def compute(self) -> dict[str, float]:
        out = {"rmse": self.squared_error.compute().sqrt().item(),
               "mae": self.absolute_error.compute().item(), "nll": self.nll.compute().item()}
        out.update({f"{k}_std": m.compute().item() for k, m in self.stds.items()})
        out.update({f"coverage_{q}": self.covered[q].compute().item() for q in INTERVALS})
        out.update({f"width_{q}": self.widths[q].compute().item() for q in INTERVALS})
        return out


def _normal_quantile(p: float) -> float:
    """The standard normal's ``p`` quantile."""
    return math.sqrt(2.0) * torch.special.erfinv(torch.tensor(2 * p - 1, dtype=torch.float64)).item()
