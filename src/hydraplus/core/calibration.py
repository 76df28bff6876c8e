"""Calibration of the top-1 confidence (docs/method.md#calibration): the one binning shared by the
ECE and the reliability diagram, the adaptive (equal-mass) ECE, and temperature scaling.

Bins: ``n`` equal-width bins over [0, 1], each ``[lo, hi)`` except the last, ``[lo, 1]``: a
confidence on an inner edge belongs to the bin above it, and a confidence of exactly 1.0 to the last
bin (torchmetrics gives 1.0 a bin of its own; Guo et al. use ``(lo, hi]``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.ranks import tie_means

TEMPERATURE_RANGE = (1e-2, 1e2)  # a fitted temperature is clamped into it (all-correct data has none)


class Bins(NamedTuple):
    """Per bin: the number of inputs, and the float64 sums of their confidences and correctness."""

    count: Tensor
    confidence: Tensor
    correct: Tensor


def _check(confidence: Tensor, correct: Tensor, n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if confidence.dim() != 1 or confidence.shape != correct.shape or confidence.numel() == 0:
        raise ValueError(f"confidence {tuple(confidence.shape)} and correct {tuple(correct.shape)} must be "
                         "the same non-empty 1-D shape")
    if not torch.isfinite(confidence).all() or confidence.min() < 0 or confidence.max() > 1:
        raise ValueError("confidences must lie in [0, 1]")


def confidence_bins(confidence: Tensor, correct: Tensor, n_bins: int) -> Bins:
    """Equal-width bins of the confidences (see the module doc) with their counts and sums."""
    _check(confidence, correct, n_bins)
    confidence = confidence.double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=torch.float64)
    return Bins(torch.bincount(index, minlength=n_bins), zeros.index_add(0, index, confidence),
                zeros.index_add(0, index, correct.double()))


def _gap(count: Tensor, confidence: Tensor, correct: Tensor) -> float:
    """sum_b n_b / n |acc_b - conf_b| over the non-empty bins, from per-bin counts and sums."""
    return ((correct - confidence).abs().sum() / count.sum()).item()


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = 10) -> float:
    """ECE (L1) over `confidence_bins`: sum_b n_b / n |acc_b - conf_b|, in [0, 1]."""
    bins = confidence_bins(confidence, correct, n_bins)
    return _gap(bins.count, bins.confidence, bins.correct)


def adaptive_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = 10) -> float:
    """Adaptive ECE (L1): the inputs sorted by confidence and split into ``n_bins`` bins of equal
    mass (sizes differing by at most one, the larger first, as ``torch.tensor_split``). Inputs of
    equal confidence count with their mean correctness, so the result does not depend on their order."""
    _check(confidence, correct, n_bins)
    confidence = confidence.double()
    correct = tie_means(correct.double(), confidence)
    confidence, order = torch.sort(confidence, stable=True)
    gaps = [(conf.sum() - corr.sum()).abs() for conf, corr in
            zip(confidence.tensor_split(n_bins), correct[order].tensor_split(n_bins), strict=True)]
    return (torch.stack(gaps).sum() / len(confidence)).item()


def _scaled_nll(log_probs: Tensor, target: Tensor, log_t: Tensor) -> Tensor:
    return F.cross_entropy(log_probs / log_t.exp(), target)


def fit_temperature(log_probs: Tensor, target: Tensor) -> float:
    """The temperature T minimising the mean NLL of ``softmax(log_probs / T)`` (float64 LBFGS on
    log T from T = 1), clamped into `TEMPERATURE_RANGE`. ``log_probs`` ``[B, C]``: the log predictive
    distribution (fit on a validation split, never on the test set)."""
    if log_probs.dim() != 2 or target.shape != log_probs.shape[:1] or len(target) == 0:
        raise ValueError(f"expected log-probabilities [B, C] and targets [B], got {tuple(log_probs.shape)} "
                         f"and {tuple(target.shape)}")
    log_probs, target = log_probs.detach().double(), target.detach().long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = _scaled_nll(log_probs, target, log_t)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    low, high = TEMPERATURE_RANGE
    value = log_t.detach().exp().item()
    return min(max(value, low), high) if math.isfinite(value) else (low if log_t < 0 else high)


def temperature_scaled(log_probs: Tensor, temperature: float) -> Tensor:
    """``log softmax(log_probs / T)`` in float64."""
    return F.log_softmax(log_probs.double() / temperature, dim=-1)


def temperature_metrics(val_log_probs: Tensor, val_target: Tensor, log_probs: Tensor, target: Tensor,
                        n_bins: int = 10) -> dict[str, float]:
    """One temperature fitted on the validation split (`fit_temperature`), then on the test data the
    ECE (``ece_ts``, ``n_bins`` equal-width bins) and mean NLL (``nll_ts``) of the scaled predictive
    distribution; log-probabilities ``[B, C]``."""
    temperature = fit_temperature(val_log_probs, val_target)
    scaled = temperature_scaled(log_probs, temperature)
    confidence, predicted = scaled.exp().max(-1)
    target = target.detach().cpu().long()
    return {"temperature": temperature,
            "ece_ts": expected_calibration_error(confidence, predicted == target, n_bins),
            "nll_ts": -scaled.gather(1, target.unsqueeze(1)).mean().item()}
