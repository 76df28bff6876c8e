"""Dataset-level metrics as torchmetrics Metrics: state is summed over batches, never averaged.

Evaluation runs on one process with the full data (global rank 0 of a multi-process run), so the
metrics never sync their state with other processes (``LOCAL``), even while a process group exists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from hydraplus.core.uncertainty import (
    classification_uncertainty,
    predictive_gaussian,
    regression_uncertainty,
)
from hydraplus.validation import check_finite, check_labels

LOCAL = {"sync_on_compute": False}  # torchmetrics settings: compute on this process's state alone


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


class NegativeLogLikelihood(_SumMetric):
    """Mean -log p(y) of the predictive (averaged over members) distribution."""

    def update(self, probs: Tensor, target: Tensor) -> None:
        p = probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
        self._add(-p.clamp_min(torch.finfo(p.dtype).tiny).log())


class BrierScore(_SumMetric):
    """Mean over examples of sum_c (p_c - onehot(y)_c)^2."""

    def update(self, probs: Tensor, target: Tensor) -> None:
        onehot = F.one_hot(target.long(), probs.shape[-1]).to(probs)
        self._add((probs - onehot).pow(2).sum(-1))


class GaussianNLL(_SumMetric):
    """Mean Gaussian NLL (with the 0.5 log 2 pi constant) of a predictive mean and variance."""

    def update(self, mean: Tensor, var: Tensor, target: Tensor) -> None:
        y = target.reshape(-1).to(mean)
        self._add(0.5 * (var.log() + (y - mean).pow(2) / var + math.log(2 * math.pi)))


class ClassificationMetrics:
    """Error, ECE, NLL, Brier and mean uncertainties of K-sample predictions.

    Two ECEs, both with equal-width bins of the top-1 confidence: ``ece`` with ``n_bins`` bins (10
    by default, as in the reliability diagrams) and ``ece_15`` with 15, the other count in common use.
    """

    def __init__(self, num_classes: int, n_bins: int = 10):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.accuracy = MulticlassAccuracy(num_classes, average="micro", **LOCAL)
        self.ece = MulticlassCalibrationError(num_classes, n_bins=n_bins, norm="l1", **LOCAL)
        self.ece_15 = MulticlassCalibrationError(num_classes, n_bins=15, norm="l1", **LOCAL)
        self.nll, self.brier = NegativeLogLikelihood(), BrierScore()
        self.entropies = {k: MeanMetric(**LOCAL) for k in ("predictive", "aleatoric", "epistemic")}

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
        logits, target = logits.detach().float().cpu(), target.detach().long().cpu()
        probs = F.softmax(logits, -1).mean(1)
        self.accuracy.update(probs, target)
        self.ece.update(probs, target)
        self.ece_15.update(probs, target)
        self.nll.update(probs, target)
        self.brier.update(probs, target)
        for name, values in classification_uncertainty(logits).items():
            self.entropies[name].update(values)

    def compute(self) -> dict[str, float]:
        out = {
            "error": 1.0 - self.accuracy.compute().item(),
            "ece": self.ece.compute().item(),
            "ece_15": self.ece_15.compute().item(),
            "nll": self.nll.compute().item(),
            "brier": self.brier.compute().item(),
        }
        out.update({f"{k}_entropy": m.compute().item() for k, m in self.entropies.items()})
        return out


class RegressionMetrics:
    """RMSE and MAE of the predictive mean, Gaussian NLL of the moment-matched mixture, mean stds."""

    def __init__(self) -> None:
        self.rmse = MeanSquaredError(squared=False, **LOCAL)
        self.mae = MeanAbsoluteError(**LOCAL)
        self.nll = GaussianNLL()
        self.stds = {k: MeanMetric(**LOCAL) for k in ("predictive", "aleatoric", "epistemic")}

    def update(self, out: Tensor, target: Tensor) -> None:
        """out ``[B, K, 2]`` (mean, log-variance per member), target ``[B]``."""
        if out.dim() != 3 or out.shape[-1] != 2:
            raise ValueError(f"expected regression outputs [B, K, 2], got shape {tuple(out.shape)}")
        out, target = out.detach().float().cpu(), target.detach().float().cpu().reshape(-1)
        if target.shape[0] != out.shape[0]:
            raise ValueError(f"targets {tuple(target.shape)} do not match outputs {tuple(out.shape)}")
        check_finite(out, "regression outputs")
        check_finite(target, "targets")
        mean, var = predictive_gaussian(out)
        self.rmse.update(mean, target)
        self.mae.update(mean, target)
        self.nll.update(mean, var, target)
        for name, values in regression_uncertainty(out).items():
            self.stds[name].update(values.sqrt())

    def compute(self) -> dict[str, float]:
        out = {"rmse": self.rmse.compute().item(), "mae": self.mae.compute().item(),
               "nll": self.nll.compute().item()}
        out.update({f"{k}_std": m.compute().item() for k, m in self.stds.items()})
        return out
