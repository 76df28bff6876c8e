"""Selective prediction (docs/method.md#selective-prediction): the risk–coverage curve and its area.

A model that abstains on its least confident inputs should make fewer errors on the rest; the area
under the risk–coverage curve (AURC, Geifman et al., "Bias-Reduced Uncertainty Estimation for Deep
Neural Classifiers", ICLR 2019) summarises how well its confidence ranks its own errors, and the area
under the generalised risk–coverage curve (AUGRC, Traub et al., "Overcoming Common Flaws in the
Evaluation of Selective Classification Systems", NeurIPS 2024) weighs each error by the coverage at
which it is accepted.

Inputs of equal confidence are accepted in a random order: every curve is its expectation over those
orders, so it does not depend on the order of the data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hydraplus.core.checks import check_finite, check_labels
from hydraplus.core.ranks import tie_means
from hydraplus.core.uncertainty import log_predictive

RISK_COVERAGES = (80, 95)  # coverages (%) at which the selective risk is reported


def confidence_errors(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Top-1 confidence of the mean prediction (float64) and whether it is wrong, per input, from
    K-sample logits ``[B, K, C]`` and targets ``[B]``."""
    if logits.dim() != 3:
        raise ValueError(f"expected logits [B, K, C], got shape {tuple(logits.shape)}")
    if logits.shape[0] == 0 or target.shape != logits.shape[:1]:
        raise ValueError(f"targets {tuple(target.shape)} do not match non-empty logits {tuple(logits.shape)}")
    check_labels(target, logits.shape[-1], "targets")
    check_finite(logits, "logits")
    log_probs, predicted = log_predictive(logits.detach().cpu()).max(-1)
    return log_probs.exp(), predicted != target.detach().cpu().long()


def selective_risks(confidence: Tensor, errors: Tensor) -> Tensor:
    """Selective risk at coverages ``k / n``, ``k = 1..n`` (float64 ``[n]``): the expected error rate
    of the ``k`` most confident inputs, ties accepted in a random order."""
    if confidence.dim() != 1 or confidence.shape != errors.shape or confidence.numel() == 0:
        raise ValueError(f"confidence {tuple(confidence.shape)} and errors {tuple(errors.shape)} must be "
                         "the same non-empty 1-D shape")
    averaged = tie_means(errors.double(), confidence)
    order = torch.sort(confidence, descending=True, stable=True).indices
    covered = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return averaged[order].cumsum(0) / covered


def risk_coverage_curve(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Coverage ``k / n`` and selective risk (`selective_risks`) for ``k = 1..n``, both float64
    ``[n]``, from K-sample logits ``[B, K, C]`` and targets ``[B]``."""
    risk = selective_risks(*confidence_errors(logits, target))
    return torch.arange(1, len(risk) + 1, dtype=torch.float64) / len(risk), risk


def risk_at(risk: Tensor, coverage: float) -> float:
    """The selective risk of the ``ceil(coverage * n)`` most confident inputs (``coverage`` in (0, 1])."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    return risk[max(1, math.ceil(coverage * len(risk) - 1e-9)) - 1].item()


def selective_metrics(logits: Tensor, target: Tensor) -> dict[str, float]:
    """``aurc`` (the mean selective risk over coverages ``1/n .. 1``), ``augrc`` (the mean over the
    same coverages of coverage times risk: the share of inputs both accepted and wrong) and
    ``risk_80``/``risk_95``, the risk at 80% / 95% coverage; all in [0, 1], lower is better."""
    coverage, risk = risk_coverage_curve(logits, target)
    out = {"aurc": risk.mean().item(), "augrc": (coverage * risk).mean().item()}
    out.update({f"risk_{c}": risk_at(risk, c / 100) for c in RISK_COVERAGES})
    return out


def aurc(logits: Tensor, target: Tensor) -> float:
    """Area under the risk–coverage curve: the mean selective risk over coverages ``1/n .. 1``
    (lower is better; in [0, 1])."""
    return risk_coverage_curve(logits, target)[1].mean().item()
