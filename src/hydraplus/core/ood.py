"""Out-of-distribution detection: how well an uncertainty score tells OOD inputs (positives) apart."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

from hydraplus.core.uncertainty import classification_uncertainty

OOD_MEASURES = ("predictive", "epistemic")


def detection_scores(in_scores: Tensor, ood_scores: Tensor) -> dict[str, float]:
    """AUROC and AUPR (average precision) with OOD as the positive class; higher score = more OOD."""
    for name, scores in (("in-distribution", in_scores), ("OOD", ood_scores)):
        if scores.dim() != 1 or scores.numel() == 0:
            raise ValueError(f"{name} scores must be a non-empty 1-D tensor, got shape {tuple(scores.shape)}")
        if not torch.isfinite(scores).all():
            raise ValueError(f"{name} scores contain NaN or infinite values")
    preds = torch.cat([in_scores, ood_scores]).detach().double().cpu()
    target = torch.cat([torch.zeros(len(in_scores)), torch.ones(len(ood_scores))]).long()
    return {
        "auroc": BinaryAUROC()(preds, target).item(),
        "aupr": BinaryAveragePrecision()(preds, target).item(),
    }


def ood_detection(in_logits: Tensor, ood_logits: Tensor) -> dict[str, float]:
    """From K-sample logits ``[B, K, C]`` on both sets: ``{measure}_auroc`` and ``{measure}_aupr``
    for predictive entropy and epistemic uncertainty (mutual information)."""
    scores_in = classification_uncertainty(in_logits.detach().cpu())
    scores_ood = classification_uncertainty(ood_logits.detach().cpu())
    out: dict[str, float] = {}
    for measure in OOD_MEASURES:
        for key, value in detection_scores(scores_in[measure], scores_ood[measure]).items():
            out[f"{measure}_{key}"] = value
    return out
