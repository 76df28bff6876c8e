"""Out-of-distribution detection (docs/method.md#out-of-distribution-detection): how well an
uncertainty score tells OOD inputs apart.

OOD inputs are the positive class throughout and every score is oriented so that higher means
more likely OOD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_specificity_at_sensitivity,
)

from hydraplus.core.uncertainty import classification_uncertainty

OOD_MEASURES = ("msp", "predictive", "epistemic")
FPR_AT_TPR = 0.95  # FPR95: the share of OOD inputs that must be detected


def _unit_ranks(scores: Tensor) -> Tensor:
    """Scores mapped onto [0, 1] by rank, ties kept. torchmetrics passes scores outside [0, 1]
    through a sigmoid, which saturates (1.0 above about 37 in float64) and would tie large scores."""
    values, inverse = torch.unique(scores, return_inverse=True)
    return inverse.double() / max(len(values) - 1, 1)


def detection_scores(in_scores: Tensor, ood_scores: Tensor) -> dict[str, float]:
    """AUROC, AUPR (average precision) and FPR95 with OOD as the positive class; higher score = more OOD.

    FPR95 is the smallest share of in-distribution inputs scoring at or above a threshold that
    flags at least 95% of the OOD inputs (TPR >= 0.95); 0 is perfect, 1 the worst.
    """
    for name, scores in (("in-distribution", in_scores), ("OOD", ood_scores)):
        if scores.dim() != 1 or scores.numel() == 0:
            raise ValueError(f"{name} scores must be a non-empty 1-D tensor, got shape {tuple(scores.shape)}")
        if not torch.isfinite(scores).all():
            raise ValueError(f"{name} scores contain NaN or infinite values")
    preds = _unit_ranks(torch.cat([in_scores, ood_scores]).detach().double().cpu())
    target = torch.cat([torch.zeros(len(in_scores)), torch.ones(len(ood_scores))]).long()
    specificity, _ = binary_specificity_at_sensitivity(preds, target, min_sensitivity=FPR_AT_TPR)
    return {
        "auroc": binary_auroc(preds, target).item(),
        "aupr": binary_average_precision(preds, target).item(),
        "fpr95": 1.0 - specificity.item(),
    }


def _ood_scores(logits: Tensor) -> dict[str, Tensor]:
    """Each measure of `OOD_MEASURES` per input ``[B]``, higher = more likely OOD."""
    logits = logits.detach().float().cpu()
    scores = classification_uncertainty(logits)
    scores["msp"] = 1.0 - F.softmax(logits, dim=-1).mean(1).amax(-1)
    return scores


def ood_detection(in_logits: Tensor, ood_logits: Tensor) -> dict[str, float]:
    """From K-sample logits ``[B, K, C]`` on both sets: ``{measure}_auroc``, ``{measure}_aupr`` and
    ``{measure}_fpr95`` for each measure in `OOD_MEASURES`: ``msp`` (1 - the maximum of the mean
    softmax probability), ``predictive`` (entropy) and ``epistemic`` (mutual information)."""
    scores_in, scores_ood = _ood_scores(in_logits), _ood_scores(ood_logits)
    out: dict[str, float] = {}
    for measure in OOD_MEASURES:
        for key, value in detection_scores(scores_in[measure], scores_ood[measure]).items():
            out[f"{measure}_{key}"] = value
    return out
