"""Selective prediction (docs/method.md#selective-prediction): the risk–coverage curve and its area.

A model that abstains on its least confident inputs should make fewer errors on the rest; the area
under the risk–coverage curve (AURC, Geifman et al., "Bias-Reduced Uncertainty Estimation for Deep
Neural Classifiers", ICLR 2019) summarises how well its confidence ranks its own errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.validation import check_finite, check_labels


def risk_coverage_curve(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Coverage ``k / n`` and selective risk (error rate of the ``k`` most confident inputs) for
    ``k = 1..n``, both float64 ``[n]``, from K-sample logits ``[B, K, C]`` and targets ``[B]``.

    Confidence is the maximum of the mean softmax probability; tied inputs keep their input order.
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits [B, K, C], got shape {tuple(logits.shape)}")
    if logits.shape[0] == 0 or target.shape != logits.shape[:1]:
        raise ValueError(f"targets {tuple(target.shape)} do not match non-empty logits {tuple(logits.shape)}")
    check_labels(target, logits.shape[-1], "targets")
    check_finite(logits, "logits")
    confidence, predicted = F.softmax(logits.detach().float().cpu(), dim=-1).mean(1).max(-1)
    order = torch.sort(confidence, descending=True, stable=True).indices
    errors = (predicted != target.detach().cpu().long())[order].double().cumsum(0)
    covered = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return covered / len(order), errors / covered


def aurc(logits: Tensor, target: Tensor) -> float:
    """Area under the risk–coverage curve: the mean selective risk over coverages ``1/n .. 1``
    (lower is better; in [0, 1])."""
    return risk_coverage_curve(logits, target)[1].mean().item()
