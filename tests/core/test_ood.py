"""OOD detection: AUROC / AUPR with OOD as the positive class, on hand-checked cases."""

from __future__ import annotations

import math

import pytest
import torch

from hydraplus.core.ood import detection_scores, ood_detection


def test_perfect_separation() -> None:
    scores = detection_scores(torch.tensor([0.0, 0.1, 0.2]), torch.tensor([0.5, 0.9]))
    assert scores == pytest.approx({"auroc": 1.0, "aupr": 1.0})


def test_reversed_scores_give_auroc_0() -> None:
    assert detection_scores(torch.tensor([0.5, 0.9]), torch.tensor([0.0, 0.1]))["auroc"] == pytest.approx(0.0)


def test_identical_scores_are_chance() -> None:
    scores = detection_scores(torch.full((6,), 0.3), torch.full((2,), 0.3))
    # AUROC counts ties as half; precision is the OOD share (2 / 8) at the only threshold
    assert scores == pytest.approx({"auroc": 0.5, "aupr": 0.25})


def test_hand_computed_case() -> None:
    # OOD 0.8 beats all three in-distribution scores, OOD 0.3 beats only 0.1: AUROC = 4 / 6.
    # Ranked: 0.8 (OOD), 0.4, 0.35, 0.3 (OOD), 0.1: precision 1 at recall 1/2, 2/4 at recall 1,
    # so AP = 0.5 * 1 + 0.5 * 0.5 = 0.75.
    scores = detection_scores(torch.tensor([0.1, 0.4, 0.35]), torch.tensor([0.8, 0.3]))
    assert scores == pytest.approx({"auroc": 4 / 6, "aupr": 0.75})


def test_ood_detection_on_logits() -> None:
    c = 4
    confident = torch.tensor([10.0, 0.0, 0.0, 0.0]).expand(5, 3, c)  # agreeing, certain members
    disagreeing = torch.eye(c)[:3].mul(10.0).expand(4, 3, c)  # each member sure of another class
    out = ood_detection(confident, disagreeing)
    assert set(out) == {"predictive_auroc", "predictive_aupr", "epistemic_auroc", "epistemic_aupr"}
    assert all(v == pytest.approx(1.0) for v in out.values())
    assert ood_detection(disagreeing, confident)["epistemic_auroc"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("in_scores", "ood_scores", "match"),
    [
        (torch.tensor([]), torch.tensor([1.0]), "in-distribution scores must be a non-empty 1-D"),
        (torch.tensor([1.0]), torch.ones(2, 2), "OOD scores must be a non-empty 1-D"),
        (torch.tensor([math.nan]), torch.tensor([1.0]), "NaN or infinite"),
    ],
)
def test_errors(in_scores: torch.Tensor, ood_scores: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        detection_scores(in_scores, ood_scores)
