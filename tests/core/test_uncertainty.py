"""Uncertainty decomposition (docs/method.md#uncertainty-decomposition) and histogram total
variation (docs/method.md#total-variation-between-histograms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hydraplus.core.uncertainty import (
    classification_uncertainty,
    histogram,
    predictive_gaussian,
    regression_uncertainty,
    total_variation,
)


def entropy(p: np.ndarray) -> float:
    """H(p) in nats."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_identical_members_have_no_epistemic_uncertainty() -> None:
    logits = torch.tensor([[[1.0, 2.0, 0.5]] * 4])  # B=1, K=4 identical
    u = classification_uncertainty(logits)
    p = np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum()
    assert u["predictive"].item() == pytest.approx(entropy(p), rel=1e-5)
    assert u["aleatoric"].item() == pytest.approx(entropy(p), rel=1e-5)
    assert u["epistemic"].item() == pytest.approx(0.0, abs=1e-6)


def test_confident_members_that_disagree_are_purely_epistemic() -> None:
    logits = torch.tensor([[[30.0, -30.0], [-30.0, 30.0]]])
    u = classification_uncertainty(logits)
    assert u["predictive"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert u["aleatoric"].item() == pytest.approx(0.0, abs=1e-6)
    assert u["epistemic"].item() == pytest.approx(math.log(2), rel=1e-6)


def test_uniform_members_are_purely_aleatoric() -> None:
    u = classification_uncertainty(torch.zeros(2, 3, 5))
    log5 = torch.full((2,), math.log(5), dtype=torch.float64)  # the decomposition runs in float64
    torch.testing.assert_close(u["predictive"], log5)
    torch.testing.assert_close(u["aleatoric"], log5)
    torch.testing.assert_close(u["epistemic"], torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_classification_decomposition_by_hand() -> None:
    logits = np.array([[[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]],
                       [[0.5, 0.5, 3.0], [-1.0, 0.0, 1.0]]])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    u = classification_uncertainty(torch.tensor(logits, dtype=torch.float32))
    for b in range(2):
        pred = entropy(probs[b].mean(0))
        alea = (entropy(probs[b, 0]) + entropy(probs[b, 1])) / 2
        assert u["predictive"][b].item() == pytest.approx(pred, rel=1e-5)
        assert u["aleatoric"][b].item() == pytest.approx(alea, rel=1e-5)
        assert u["epistemic"][b].item() == pytest.approx(pred - alea, rel=1e-4)


def test_entropies_are_bounded() -> None:
    u = classification_uncertainty(torch.randn(50, 6, 4) * 5)
    for values in u.values():
        assert (values >= 0).all() and (values <= math.log(4) + 1e-5).all()
    with pytest.raises(ValueError, match="logits"):
        classification_uncertainty(torch.randn(3, 4))


def test_regression_decomposition_by_hand() -> None:
    # Members: N(1, 1) and N(3, 4).
    out = torch.tensor([[[1.0, 0.0], [3.0, math.log(4.0)]]])
    u = regression_uncertainty(out)
    assert u["aleatoric"].item() == pytest.approx(2.5)  # mean variance
    assert u["epistemic"].item() == pytest.approx(1.0)  # population variance of (1, 3)
    assert u["predictive"].item() == pytest.approx(3.5)
    mean, var = predictive_gaussian(out)
    assert mean.item() == pytest.approx(2.0) and var.item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="regression"):
        regression_uncertainty(torch.zeros(2, 3, 3))


def test_histogram_is_normalised_and_clamped() -> None:
    h = histogram(torch.tensor([-1.0, 0.1, 0.2, 5.0]), bins=4, upper=1.0)
    assert h.sum().item() == pytest.approx(1.0)
    assert h.tolist() == pytest.approx([0.75, 0.0, 0.0, 0.25])
    with pytest.raises(ValueError, match="empty"):
        histogram(torch.tensor([]), 10, 1.0)


def test_total_variation_known_cases() -> None:
    a = torch.linspace(0.0, 1.0, 100)
    assert total_variation(a, a.clone(), upper=1.0) == pytest.approx(0.0, abs=1e-7)
    low, high = torch.full((20,), 0.1), torch.full((30,), 0.9)
    assert total_variation(low, high, upper=1.0) == pytest.approx(1.0)
    half = torch.cat([torch.full((10,), 0.1), torch.full((10,), 0.9)])
    assert total_variation(low, half, upper=1.0) == pytest.approx(0.5)
    # Bounded by 1 whatever the spread of the values (normalised histograms, not densities).
    assert 0.0 <= total_variation(torch.rand(500) * 0.02, torch.rand(70), upper=1.0, bins=50) <= 1.0
