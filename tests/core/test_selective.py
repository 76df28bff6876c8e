"""Selective prediction: risk–coverage curve and AURC by hand and against their known values."""

from __future__ import annotations

import math

import pytest
import torch

from hydraplus.core.selective import aurc, risk_coverage_curve


def _logits(confidence: torch.Tensor) -> torch.Tensor:
    """Two-class ``[B, 1, 2]`` logits predicting class 0 with the given confidences (> 0.5)."""
    return torch.stack([confidence, 1 - confidence], -1).double().log().unsqueeze(1)


def test_hand_worked_curve() -> None:
    # By confidence: 0.9 right, 0.8 wrong, 0.7 right, 0.6 wrong (given out of order).
    confidence = torch.tensor([0.7, 0.9, 0.6, 0.8])
    target = torch.tensor([0, 0, 1, 1])
    coverage, risk = risk_coverage_curve(_logits(confidence), target)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0.0, 1 / 2, 1 / 3, 2 / 4])
    assert aurc(_logits(confidence), target) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)


def test_mean_prediction_sets_the_confidence() -> None:
    # Members (0.9, 0.1) and (0.3, 0.7) average to (0.6, 0.4): predicted 0 at confidence 0.6,
    # below the single-member 0.8 input, although one of its members says 0.9.
    logits = torch.tensor([[[0.9, 0.1], [0.3, 0.7]], [[0.8, 0.2], [0.8, 0.2]]]).log()
    _, risk = risk_coverage_curve(logits, torch.tensor([1, 0]))
    assert risk.tolist() == pytest.approx([0.0, 0.5])


@pytest.mark.parametrize(("n", "errors"), [(10, 3), (100, 25), (7, 7), (5, 0)])
def test_perfect_ranking_gives_the_closed_form(n: int, errors: int) -> None:
    # All right answers first: risk 0 up to r = n - m, then (k - r) / k, so
    # AURC = m / n - (r / n) (H_n - H_r) with H the harmonic numbers.
    right = n - errors
    confidence = torch.linspace(0.99, 0.51, n)
    target = torch.tensor([0] * right + [1] * errors)
    harmonic = sum(1 / k for k in range(right + 1, n + 1))
    assert aurc(_logits(confidence), target) == pytest.approx(errors / n - right / n * harmonic)


def test_perfect_ranking_tends_to_the_optimal_area() -> None:
    # For large n the closed form tends to e + (1 - e) log(1 - e).
    n, e = 20_000, 0.2
    target = torch.tensor([0] * int(n * (1 - e)) + [1] * int(n * e))
    got = aurc(_logits(torch.linspace(0.99, 0.51, n)), target)
    assert got == pytest.approx(e + (1 - e) * math.log(1 - e), abs=1e-3)


def test_random_ranking_is_the_error_rate() -> None:
    # With confidence independent of correctness the expected risk is e at every coverage.
    n, e, repeats = 200, 0.3, 50
    target = torch.tensor([0] * int(n * (1 - e)) + [1] * int(n * e))
    areas = [aurc(_logits(torch.rand(n) * 0.49 + 0.505), target) for _ in range(repeats)]
    assert sum(areas) / repeats == pytest.approx(e, abs=0.02)


@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), r"logits \[B, K, C\]"),
        (torch.zeros(3, 1, 2), torch.zeros(2, dtype=torch.long), "do not match"),
        (torch.zeros(0, 1, 2), torch.zeros(0, dtype=torch.long), "do not match non-empty"),
        (torch.full((2, 1, 2), math.nan), torch.zeros(2, dtype=torch.long), "logits"),
    ],
)
def test_errors(logits: torch.Tensor, target: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        risk_coverage_curve(logits, target)
