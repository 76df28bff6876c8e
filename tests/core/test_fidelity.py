"""Student-to-ensemble fidelity: identical models, a hand-made case, batching and input checks."""

from __future__ import annotations

import math

import pytest
import torch

from hydraplus.core.fidelity import Fidelity, fidelity


def test_identical_logits_are_perfectly_faithful() -> None:
    logits = torch.randn(20, 4, 5) * 3
    assert fidelity(logits, logits.clone()) == pytest.approx(
        {"epistemic_spearman": 1.0, "agreement": 1.0, "kl": 0.0}, abs=1e-6  # torchmetrics' eps
    )


def test_hand_made_case() -> None:
    # Two members / heads, two classes, as probabilities (class-0 probability per member).
    ensemble = [[0.6, 0.6], [0.9, 0.5], [0.9, 0.2]]  # means 0.6, 0.7, 0.55; epistemic 0, 0.10, 0.28
    student = [[0.9, 0.3], [0.8, 0.8], [0.05, 0.75]]  # means 0.6, 0.8, 0.4; epistemic 0.21, 0, 0.29

    def as_logits(p: list[list[float]]) -> torch.Tensor:
        p0 = torch.tensor(p, dtype=torch.float64)
        return torch.stack([p0, 1 - p0], -1).log()

    got = fidelity(as_logits(student), as_logits(ensemble))
    # Epistemic ranks (1, 2, 3) against (2, 1, 3): rho = 1 - 6 * 2 / (3 * 8) = 0.5.
    assert got["epistemic_spearman"] == pytest.approx(0.5, abs=1e-5)
    # Predicted classes 0, 0, 0 against 0, 0, 1.
    assert got["agreement"] == pytest.approx(2 / 3)

    def kl(p: float, q: float) -> float:
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    # KL(ensemble mean || student mean), averaged over the three inputs.
    assert got["kl"] == pytest.approx((kl(0.6, 0.6) + kl(0.7, 0.8) + kl(0.55, 0.4)) / 3)
    assert got["kl"] != pytest.approx((kl(0.6, 0.6) + kl(0.8, 0.7) + kl(0.4, 0.55)) / 3)


def test_batches_accumulate_to_the_whole() -> None:
    student, ensemble = torch.randn(37, 3, 4) * 2, torch.randn(37, 5, 4) * 2
    metric = Fidelity()
    for s, e in zip(torch.split(student, [1, 16, 20]), torch.split(ensemble, [1, 16, 20]), strict=True):
        metric.update(s, e)
    assert metric.compute() == pytest.approx(fidelity(student, ensemble), abs=1e-9)


@pytest.mark.parametrize(
    ("student", "ensemble", "match"),
    [
        (torch.zeros(4, 3), torch.zeros(4, 2, 3), r"\[B, K, C\]"),
        (torch.zeros(4, 2, 3), torch.zeros(5, 2, 3), "differ in inputs or classes"),
        (torch.zeros(4, 2, 3), torch.zeros(4, 2, 4), "differ in inputs or classes"),
        (torch.full((4, 2, 3), math.inf), torch.zeros(4, 2, 3), "student logits must be finite"),
        (torch.zeros(1, 2, 3), torch.zeros(1, 5, 3), "at least 2 inputs"),
    ],
)
def test_errors(student: torch.Tensor, ensemble: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fidelity(student, ensemble)
