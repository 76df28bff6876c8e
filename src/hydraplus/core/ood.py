"""Out-of-distribution detection (docs/method.md#out-of-distribution-detection): how well an
uncertainty score tells OOD inputs apart.

OOD inputs are the positive class throughout and every score is oriented so that higher means
more likely OOD.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_specificity_at_sensitivity,
)

from hydraplus.core.uncertainty import classification_uncertainty, log_predictive

OOD_MEASURES = ("msp", "predictive", "epistemic")
LOGIT_MEASURES = ("energy", "maxlogit")  # only for models whose outputs are logits
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


def is_log_probabilities(outputs: Tensor, atol: float = 1e-4) -> bool:
    """Whether K-sample outputs ``[B, K, C]`` are normalised log-probabilities (logsumexp 0 over the
    classes everywhere, as EnDD's samples) rather than logits: energy and max-logit need logits."""
    return bool((torch.logsumexp(outputs.double(), dim=-1).abs() <= atol).all())


def ood_scores(logits: Tensor) -> dict[str, Tensor]:
    """Each measure per input ``[B]`` (float64), higher = more likely OOD: the measures of
    `OOD_MEASURES`, and of `LOGIT_MEASURES` unless the outputs are log-probabilities."""
    logits = logits.detach().cpu().double()
    scores = classification_uncertainty(logits)
    scores["msp"] = 1.0 - log_predictive(logits).amax(-1).exp()
    if not is_log_probabilities(logits):
        scores["energy"] = -torch.logsumexp(logits, dim=-1).mean(1)
        scores["maxlogit"] = -logits.amax(-1).mean(1)
    return {name: scores[name] for name in (*OOD_MEASURES, *LOGIT_MEASURES) if name in scores}


def ood_detection(in_logits: Tensor, ood_logits: Tensor) -> dict[str, float]:
    """From K-sample logits ``[B, K, C]`` on both sets: ``{measure}_auroc``, ``{measure}_aupr`` and
    ``{measure}_fpr95`` for each measure in `OOD_MEASURES`: ``msp`` (1 - the maximum of the mean
    softmax probability), ``predictive`` (entropy) and ``epistemic`` (mutual information), and where
    both sets' outputs are logits, `LOGIT_MEASURES`: ``energy`` (the members' mean of
    -logsumexp_c s_kc, temperature 1) and ``maxlogit`` (the members' mean of -max_c s_kc)."""
    scores_in, scores_ood = ood_scores(in_logits), ood_scores(ood_logits)
    out: dict[str, float] = {}
    for measure in scores_in:
        if measure not in scores_ood:
            continue
        for key, value in detection_scores(scores_in[measure], scores_ood[measure]).items():
            out[f"{measure}_{key}"] = value
    return out
