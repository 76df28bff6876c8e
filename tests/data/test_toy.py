"""The two toy problems (docs/method.md#toy-problems): sizes, splits, ranges and seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hydraplus.data.toy import make_regression, make_spiral, make_toy, regression_function, spiral_grid


def test_spiral_sizes_and_split() -> None:
    p = make_spiral(seed=0)
    assert (p.task, p.num_outputs, p.in_features) == ("classification", 3, 2)
    assert p.x_train.shape == (240, 2) and p.y_train.shape == (240,)
    assert p.x_val.shape == (30, 2) and p.y_val.shape == (30,)
    assert p.x_test.shape == (30, 2) and p.y_test.shape == (30,)
    assert p.y_train.dtype == torch.long and p.x_train.dtype == torch.float32
    labels = torch.cat([p.y_train, p.y_val, p.y_test])
    assert torch.bincount(labels).tolist() == [100, 100, 100]  # 3 balanced arms in total
    # The splits are disjoint: 300 distinct points.
    x = torch.cat([p.x_train, p.x_val, p.x_test])
    assert torch.unique(x, dim=0).shape[0] == 300
    # The split is random: the training set holds points of every arm, not one arm after another.
    assert set(p.y_train[:30].tolist()) == {0, 1, 2}


def test_spiral_geometry() -> None:
    p = make_spiral(seed=3)
    x = torch.cat([p.x_train, p.x_val, p.x_test])
    y = torch.cat([p.y_train, p.y_val, p.y_test])
    # theta <= 2 pi, noise <= 0.5 per coordinate: every point within 2 pi + 0.5 sqrt 2 of the origin.
    assert x.norm(dim=1).max().item() <= 2 * math.pi + 0.5 * math.sqrt(2) + 1e-5
    # Arms are rotated by 120 degrees: their mean directions are 120 degrees apart.
    angles = []
    for arm in range(3):
        mean = x[y == arm].mean(0)
        angles.append(math.atan2(mean[1].item(), mean[0].item()))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        diff = (angles[b] - angles[a]) % (2 * math.pi)
        assert diff == pytest.approx(2 * math.pi / 3, abs=0.35)


def test_spiral_grid() -> None:
    p = make_spiral(seed=0)
    grid = p.x_probe
    assert grid.shape == (10000, 2)
    assert grid.min().item() == -20.0 and grid.max().item() == 20.0
    for dim in range(2):
        values = torch.unique(grid[:, dim])
        assert values.numel() == 100
        torch.testing.assert_close(values, torch.linspace(-20, 20, 100))
    assert torch.unique(grid, dim=0).shape[0] == 10000
    torch.testing.assert_close(grid, spiral_grid())


def test_spiral_seeding() -> None:
    a, b, c = make_spiral(seed=1), make_spiral(seed=1), make_spiral(seed=2)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_test, c.x_test)


def test_regression_sizes_and_ranges() -> None:
    p = make_regression(seed=0)
    assert (p.task, p.num_outputs, p.in_features) == ("regression", 2, 1)
    assert p.x_train.shape == (240, 1) and p.y_train.shape == (240,)
    assert p.x_val.shape == (30, 1) and p.x_test.shape == (30, 1)
    assert p.x_probe.shape == (1000, 1) and p.y_probe is not None and p.y_probe.shape == (1000,)
    assert p.x_train.min().item() >= -6.0 and p.x_train.max().item() <= 6.0
    assert p.x_train.min().item() < -5.0 and p.x_train.max().item() > 5.0  # covers the range
    # Validation and test: an even grid over [-6, 6], noiseless.
    grid = torch.linspace(-6, 6, 30)
    for x, y in ((p.x_val, p.y_val), (p.x_test, p.y_test)):
        torch.testing.assert_close(x[:, 0], grid)
        torch.testing.assert_close(y, regression_function(x[:, 0]), rtol=1e-5, atol=1e-5)
    # Out of range: an even grid over [-12, 12], noiseless.
    torch.testing.assert_close(p.x_probe[:, 0], torch.linspace(-12, 12, 1000))
    torch.testing.assert_close(p.y_probe, regression_function(p.x_probe[:, 0]), rtol=1e-5, atol=1e-4)


def test_regression_training_noise_is_unit_gaussian() -> None:
    p = make_regression(seed=0)
    residual = (p.y_train - regression_function(p.x_train[:, 0])).numpy()
    assert abs(residual.mean()) < 0.25
    assert 0.85 < residual.std() < 1.15


def test_regression_function_by_hand() -> None:
    x = 2.0
    expected = math.sin(2.0) - 0.2 + 0.4 + 0.08
    assert float(regression_function(np.array(x))) == pytest.approx(expected)
    assert regression_function(torch.tensor(x)).item() == pytest.approx(expected, rel=1e-6)


def test_regression_seeding() -> None:
    a, b, c = make_regression(seed=5), make_regression(seed=5), make_regression(seed=6)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_make_toy_dispatch() -> None:
    assert make_toy("spiral", seed=0).name == "spiral"
    assert make_toy("regression", seed=0).name == "regression"
    with pytest.raises(ValueError, match="unknown toy problem"):
        make_toy("moons")
