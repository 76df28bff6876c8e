"""Predictive / aleatoric / epistemic decomposition (docs/method.md#uncertainty-decomposition)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.distributions import split_gaussian
from hydraplus.core.losses import moment_matched


def _entropy_from_logs(log_p: Tensor) -> Tensor:
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(-1)


def classification_uncertainty(logits: Tensor) -> dict[str, Tensor]:
    """From K predictions ``[B, K, C]``: entropies in nats, each ``[B]``, in [0, log C].

    predictive = H(mean_k p_k); aleatoric = mean_k H(p_k); epistemic = their difference
    (the mutual information, clamped at 0 against round-off).
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits [B, K, C], got shape {tuple(logits.shape)}")
    log_p = F.log_softmax(logits.float(), dim=-1)
    predictive = _entropy_from_logs(torch.logsumexp(log_p, dim=1) - math.log(logits.shape[1]))
    aleatoric = _entropy_from_logs(log_p).mean(1)
    return {
        "predictive": predictive,
        "aleatoric": aleatoric,
        "epistemic": (predictive - aleatoric).clamp_min(0.0),
    }


def regression_uncertainty(out: Tensor) -> dict[str, Tensor]:
    """From K Gaussians ``[B, K, 2]``: variances, each ``[B]``.

    aleatoric = mean sigma^2, epistemic = variance of the means, predictive = their sum.
    """
    if out.dim() != 3 or out.shape[-1] != 2:
        raise ValueError(f"expected regression outputs [B, K, 2], got shape {tuple(out.shape)}")
    mu, var = split_gaussian(out.float())
    aleatoric, epistemic = var.mean(1), mu.var(1, unbiased=False)
    return {"predictive": aleatoric + epistemic, "aleatoric": aleatoric, "epistemic": epistemic}


def predictive_gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the moment-matched mixture of K Gaussians ``[B, K, 2]``."""
    return moment_matched(out.float())


def histogram(values: Tensor, bins: int, upper: float) -> Tensor:
    """Normalised histogram (sums to 1) of values over [0, upper]; values clamped into range."""
    if values.numel() == 0:
        raise ValueError("cannot histogram an empty tensor")
    counts = torch.histc(values.float().clamp(0.0, upper), bins=bins, min=0.0, max=upper)
    return counts / counts.sum()


def total_variation(a: Tensor, b: Tensor, upper: float, bins: int = 50) -> float:
    """0.5 sum |p - q| between the normalised histograms of a and b over [0, upper]; in [0, 1]."""
    return 0.5 * (histogram(a, bins, upper) - histogram(b, bins, upper)).abs().sum().item()
