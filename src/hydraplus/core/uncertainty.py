"""Predictive / aleatoric / epistemic decomposition (docs/method.md#uncertainty-decomposition)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.distributions import split_gaussian
from hydraplus.core.losses import moment_matched


def _float(x: Tensor) -> Tensor:
    """float64 stays float64; every other dtype becomes float32."""
    return x if x.dtype == torch.float64 else x.float()


def _entropy_from_logs(log_p: Tensor) -> Tensor:
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(-1)


def log_predictive(logits: Tensor) -> Tensor:
    """log of the predictive distribution (the mean softmax over the K predictions), ``[B, K, C]`` ->
    ``[B, C]``, in float64 and log space (a log-probability below float32's range stays finite)."""
    if logits.dim() != 3:
        raise ValueError(f"expected logits [B, K, C], got shape {tuple(logits.shape)}")
    return torch.logsumexp(F.log_softmax(logits.double(), dim=-1), dim=1) - math.log(logits.shape[1])


def classification_uncertainty(logits: Tensor) -> dict[str, Tensor]:
    """From K predictions ``[B, K, C]``: entropies in nats, each float64 ``[B]``, in [0, log C].

    predictive = H(mean_k p_k); aleatoric = mean_k H(p_k); epistemic = the mutual information,
    computed as mean_k KL(p_k || mean_k p_k) (not as a difference of entropies, which cancels
    catastrophically when the predictions nearly agree), clamped at 0 against round-off.
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits [B, K, C], got shape {tuple(logits.shape)}")
    log_p = F.log_softmax(logits.double(), dim=-1)
    log_mean = torch.logsumexp(log_p, dim=1, keepdim=True) - math.log(logits.shape[1])
    p = log_p.exp()
    kl = torch.where(p > 0, p * (log_p - log_mean), torch.zeros_like(p)).sum(-1)
    return {
        "predictive": _entropy_from_logs(log_mean.squeeze(1)),
        "aleatoric": _entropy_from_logs(log_p).mean(1),
        "epistemic": kl.mean(1).clamp_min(0.0),
    }


def regression_uncertainty(out: Tensor) -> dict[str, Tensor]:
    """From K Gaussians ``[B, K, 2]``: variances, each ``[B]`` (float64 for float64 outputs, else float32).

    aleatoric = mean sigma^2, epistemic = variance of the means, predictive = their sum.
    """
    if out.dim() != 3 or out.shape[-1] != 2:
        raise ValueError(f"expected regression outputs [B, K, 2], got shape {tuple(out.shape)}")
    mu, var = split_gaussian(_float(out))
    aleatoric, epistemic = var.mean(1), mu.var(1, unbiased=False)
    return {"predictive": aleatoric + epistemic, "aleatoric": aleatoric, "epistemic": epistemic}


def predictive_gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the moment-matched mixture of K Gaussians ``[B, K, 2]`` (float64 for
    float64 outputs, else float32)."""
    return moment_matched(_float(out))


def histogram(values: Tensor, bins: int, upper: float) -> Tensor:
    """Normalised histogram (sums to 1) of values over [0, upper]; values clamped into range."""
    if values.numel() == 0:
        raise ValueError("cannot histogram an empty tensor")
    counts = torch.histc(values.float().clamp(0.0, upper), bins=bins, min=0.0, max=upper)
    return counts / counts.sum()


def total_variation(a: Tensor, b: Tensor, upper: float, bins: int = 50) -> float:
    """0.5 sum |p - q| between the normalised histograms of a and b over [0, upper]; in [0, 1]."""
    return 0.5 * (histogram(a, bins, upper) - histogram(b, bins, upper)).abs().sum().item()
