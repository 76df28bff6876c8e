"""Dataset-level metrics: ECE / NLL / Brier / error and RMSE / MAE / NLL computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics

PROBS = np.array([
    [0.95, 0.03, 0.02],  # label 0: confidence 0.95, correct
    [0.10, 0.85, 0.05],  # label 2: confidence 0.85, wrong
    [0.72, 0.18, 0.10],  # label 0: confidence 0.72, correct
    [0.14, 0.10, 0.76],  # label 1: confidence 0.76, wrong
    [0.40, 0.35, 0.25],  # label 1: confidence 0.40, wrong
])
LABELS = np.array([0, 2, 0, 1, 1])


def as_logits(probs: np.ndarray) -> torch.Tensor:
    """``[B, C]`` probabilities to ``[B, 1, C]`` logits whose softmax is exactly them."""
    return torch.tensor(np.log(probs), dtype=torch.float32).unsqueeze(1)


def test_classification_metrics_by_hand() -> None:
    metrics = ClassificationMetrics(num_classes=3)
    metrics.update(as_logits(PROBS), torch.tensor(LABELS))
    got = metrics.compute()

    conf, pred = PROBS.max(1), PROBS.argmax(1)
    correct = (pred == LABELS).astype(float)
    assert got["error"] == pytest.approx(3 / 5, abs=1e-6)

    # ECE with 10 equal-width bins: sum_b (n_b / n) |acc_b - conf_b|.
    bins = np.floor(conf * 10).astype(int)
    ece = 0.0
    for b in np.unique(bins):
        idx = bins == b
        ece += idx.sum() / len(conf) * abs(correct[idx].mean() - conf[idx].mean())
    # Written out: 0.2*|1-0.95| + 0.2*|0-0.85| + 0.4*|0.5-0.74| + 0.2*|0-0.40|
    assert ece == pytest.approx(0.2 * 0.05 + 0.2 * 0.85 + 0.4 * 0.24 + 0.2 * 0.40)
    assert got["ece"] == pytest.approx(ece, abs=1e-5)

    nll = -np.mean(np.log(PROBS[np.arange(5), LABELS]))
    assert got["nll"] == pytest.approx(nll, rel=1e-5)
    onehot = np.eye(3)[LABELS]
    brier = np.mean(((PROBS - onehot) ** 2).sum(1))
    assert got["brier"] == pytest.approx(brier, rel=1e-5)
    # With one prediction per example there is no epistemic uncertainty.
    assert got["epistemic_entropy"] == pytest.approx(0.0, abs=1e-6)
    ent = -np.mean((PROBS * np.log(PROBS)).sum(1))
    assert got["predictive_entropy"] == pytest.approx(ent, rel=1e-5)
    assert got["aleatoric_entropy"] == pytest.approx(ent, rel=1e-5)


def test_ece_bin_counts() -> None:
    # Confidences 0.62 (correct) and 0.68 (wrong) share the bin [0.6, 0.7) of 10 but fall either side
    # of 10/15 with 15 bins.
    probs = np.array([[0.62, 0.38], [0.68, 0.32]])
    target = torch.tensor([0, 1])
    metrics = ClassificationMetrics(num_classes=2)
    metrics.update(as_logits(probs), target)
    got = metrics.compute()
    assert got["ece"] == pytest.approx(abs(0.5 - 0.65), abs=1e-5)
    assert got["ece_15"] == pytest.approx(0.5 * abs(1 - 0.62) + 0.5 * abs(0 - 0.68), abs=1e-5)
    p = torch.tensor(probs, dtype=torch.float32)
    for key, bins in (("ece", 10), ("ece_15", 15)):
        expected = multiclass_calibration_error(p, target, num_classes=2, n_bins=bins, norm="l1")
        assert got[key] == pytest.approx(expected.item(), abs=1e-6)
    # n_bins sets the bins of "ece" only.
    metrics = ClassificationMetrics(num_classes=2, n_bins=15)
    metrics.update(as_logits(probs), target)
    assert metrics.compute()["ece"] == pytest.approx(got["ece_15"], abs=1e-6)


def test_classification_metrics_use_the_average_of_the_members() -> None:
    # Members (0.9, 0.1) and (0.5, 0.5), label 0: predictive p = (0.7, 0.3).
    logits = torch.log(torch.tensor([[[0.9, 0.1], [0.5, 0.5]]]))
    metrics = ClassificationMetrics(num_classes=2)
    metrics.update(logits, torch.tensor([0]))
    got = metrics.compute()
    assert got["nll"] == pytest.approx(-math.log(0.7), rel=1e-5)
    assert got["brier"] == pytest.approx(0.3**2 + 0.3**2, rel=1e-5)
    assert got["error"] == 0.0
    assert got["ece"] == pytest.approx(0.3, abs=1e-5)
    h = lambda *p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert got["predictive_entropy"] == pytest.approx(h(0.7, 0.3), rel=1e-5)
    assert got["aleatoric_entropy"] == pytest.approx((h(0.9, 0.1) + h(0.5, 0.5)) / 2, rel=1e-5)
    assert got["epistemic_entropy"] == pytest.approx(h(0.7, 0.3) - (h(0.9, 0.1) + h(0.5, 0.5)) / 2,
                                                     rel=1e-4)


def test_classification_metrics_accumulate_over_the_dataset() -> None:
    logits = torch.randn(61, 4, 5) * 3
    target = torch.randint(0, 5, (61,))
    whole = ClassificationMetrics(num_classes=5)
    whole.update(logits, target)
    parts = ClassificationMetrics(num_classes=5)
    sizes = [1, 7, 20, 33]
    for chunk_x, chunk_y in zip(torch.split(logits, sizes), torch.split(target, sizes), strict=True):
        parts.update(chunk_x, chunk_y)
    a, b = whole.compute(), parts.compute()
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    # Averaging per batch would give something else on these uneven batches.
    per_batch = []
    for chunk_x, chunk_y in zip(torch.split(logits, sizes), torch.split(target, sizes), strict=True):
        m = ClassificationMetrics(num_classes=5)
        m.update(chunk_x, chunk_y)
        per_batch.append(m.compute()["nll"])
    assert abs(np.mean(per_batch) - a["nll"]) > 1e-3


def test_classification_metrics_validation() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationMetrics(num_classes=1)
    metrics = ClassificationMetrics(num_classes=3)
    with pytest.raises(ValueError, match="logits"):
        metrics.update(torch.randn(4, 2, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        metrics.update(torch.randn(4, 2, 3), torch.zeros(5, dtype=torch.long))


def test_regression_metrics_by_hand() -> None:
    # B=3, K=2 members of (mean, log variance).
    out = np.array([
        [[1.0, 0.0], [3.0, math.log(4.0)]],
        [[0.0, math.log(0.5)], [0.0, math.log(1.5)]],
        [[-2.0, 0.0], [0.0, 0.0]],
    ])
    y = np.array([2.5, -1.0, 0.0])
    mus, variances = out[..., 0], np.exp(out[..., 1])
    mean = mus.mean(1)
    alea, epi = variances.mean(1), mus.var(1)  # population variance of the means
    var = alea + epi
    metrics = RegressionMetrics()
    metrics.update(torch.tensor(out, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    got = metrics.compute()
    assert mean.tolist() == [2.0, 0.0, -1.0] and var.tolist() == pytest.approx([3.5, 1.0, 2.0])
    assert got["rmse"] == pytest.approx(math.sqrt((0.5**2 + 1.0**2 + 1.0**2) / 3), rel=1e-5)
    assert got["mae"] == pytest.approx((0.5 + 1.0 + 1.0) / 3, rel=1e-5)
    nll = np.mean(0.5 * (np.log(var) + (y - mean) ** 2 / var + math.log(2 * math.pi)))
    assert got["nll"] == pytest.approx(nll, rel=1e-5)
    assert got["aleatoric_std"] == pytest.approx(np.sqrt(alea).mean(), rel=1e-5)
    assert got["epistemic_std"] == pytest.approx(np.sqrt(epi).mean(), rel=1e-5)
    assert got["predictive_std"] == pytest.approx(np.sqrt(var).mean(), rel=1e-5)


def test_regression_metrics_accumulate_over_the_dataset() -> None:
    out, y = torch.randn(40, 3, 2), torch.randn(40)
    whole, parts = RegressionMetrics(), RegressionMetrics()
    whole.update(out, y)
    for chunk_x, chunk_y in zip(torch.split(out, [3, 37]), torch.split(y, [3, 37]), strict=True):
        parts.update(chunk_x, chunk_y)
    a, b = whole.compute(), parts.compute()
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_regression_metrics_validation() -> None:
    metrics = RegressionMetrics()
    with pytest.raises(ValueError, match="regression"):
        metrics.update(torch.randn(4, 2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        metrics.update(torch.randn(4, 2, 2), torch.zeros(3))
