"""The paper's two toy problems (docs/method.md#toy-problems), drawn once from a seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hydraplus.data.problem import Problem
from hydraplus.data.sources import SOURCES, Source, register_source, source_names

GRID_LIMIT, GRID_SIZE = 20.0, 100
REGRESSION_RANGE, OOR_RANGE = 6.0, 12.0


@dataclass
class ToyProblem(Problem):
    """Splits plus an off-data probe set (spiral grid or out-of-range x)."""

    x_probe: Tensor
    y_probe: Tensor | None = None


def _t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


def spiral_grid(limit: float = GRID_LIMIT, size: int = GRID_SIZE) -> Tensor:
    """A size x size grid over [-limit, limit]^2, row-major in y then x: ``[size^2, 2]``."""
    axis = torch.linspace(-limit, limit, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def make_spiral(seed: int = 0, points_per_arm: int = 100, arms: int = 3) -> ToyProblem:
    """Three spiral arms (0, 120, 240 degrees), 100 points each, split 80/10/10 at random."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for arm in range(arms):
        u = rng.uniform(size=points_per_arm)
        theta = np.sqrt(u) * 2 * math.pi
        px = theta * np.cos(theta) + 0.5 * rng.uniform(size=points_per_arm)
        py = theta * np.sin(theta) + 0.5 * rng.uniform(size=points_per_arm)
        angle = 2 * math.pi * arm / arms
        c, s = math.cos(angle), math.sin(angle)
        xs.append(np.stack([c * px - s * py, s * px + c * py], axis=1))
        ys.append(np.full(points_per_arm, arm))
    x, y = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(x))
    n_train, n_val = int(0.8 * len(x)), int(0.1 * len(x))
    tr, va, te = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
    return ToyProblem(
        "spiral", "classification", arms,
        _t(x[tr]), _t(y[tr], torch.long), _t(x[va]), _t(y[va], torch.long),
        _t(x[te]), _t(y[te], torch.long), spiral_grid(),
    )


def regression_function(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """y = sin(x) - 0.1 x + 0.1 x^2 + 0.01 x^3."""
    sin = torch.sin if isinstance(x, Tensor) else np.sin
    return sin(x) - 0.1 * x + 0.1 * x**2 + 0.01 * x**3


def make_regression(seed: int = 0, n_train: int = 240, n_eval: int = 30, n_probe: int = 1000) -> ToyProblem:
    """240 noisy training points on U(-6, 6); noiseless even grids for val, test and [-12, 12]."""
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-REGRESSION_RANGE, REGRESSION_RANGE, size=n_train)
    y_train = regression_function(x_train) + rng.normal(size=n_train)
    x_eval = np.linspace(-REGRESSION_RANGE, REGRESSION_RANGE, n_eval)
    x_probe = np.linspace(-OOR_RANGE, OOR_RANGE, n_probe)
    col = lambda a: _t(a).reshape(-1, 1)  # noqa: E731
    return ToyProblem(
        "regression", "regression", 2,
        col(x_train), _t(y_train), col(x_eval), _t(regression_function(x_eval)),
        col(x_eval), _t(regression_function(x_eval)), col(x_probe), _t(regression_function(x_probe)),
    )


def make_toy(name: str, seed: int = 0) -> ToyProblem:
    """A registered toy problem (``spiral`` or ``regression``) drawn from ``seed``."""
    if name not in source_names("toy"):
        raise ValueError(f"unknown toy problem {name!r}; choose one of {source_names('toy')}")
    return SOURCES[name].read(seed)


register_source(Source("spiral", "toy", classes=3, read=make_spiral))
register_source(Source("regression", "toy", classes=None, read=make_regression))
