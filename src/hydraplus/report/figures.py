"""Figures of the toy problems: uncertainty maps (spiral) and bands (regression)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from hydraplus.data.toy import GRID_LIMIT, GRID_SIZE, ToyProblem, regression_function
from hydraplus.io import atomic_write_bytes

SPIRAL_PANEL_INCHES, DPI = 2.2, 70


def save_figure(fig: Figure, path: Path) -> None:
    """Render to PNG in memory, then write atomically (never a half-written figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())


def spiral_figure(problem: ToyProblem, probe: dict[str, dict[str, Tensor]]) -> Figure:
    """One row per model; predictive, aleatoric, epistemic entropy over [-20, 20]^2."""
    names = list(probe)
    size = SPIRAL_PANEL_INCHES
    fig, axes = plt.subplots(len(names), 3, figsize=(3 * size + 0.9, len(names) * size),
                             squeeze=False, layout="constrained")
    upper = math.log(problem.num_outputs)
    extent = (-GRID_LIMIT, GRID_LIMIT, -GRID_LIMIT, GRID_LIMIT)
    image = None
    for row, name in enumerate(names):
        for col, kind in enumerate(("predictive", "aleatoric", "epistemic")):
            ax = axes[row, col]
            grid = probe[name][kind].reshape(GRID_SIZE, GRID_SIZE).numpy()
            image = ax.imshow(grid, origin="lower", extent=extent, vmin=0.0, vmax=upper,
                              cmap="viridis")
            ax.scatter(problem.x_train[:, 0], problem.x_train[:, 1], c=problem.y_train, s=2,
                       cmap="autumn", linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(kind, fontsize=10)
            if col == 0:
                ax.set_ylabel(name, fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.3, label="entropy (nats)")
    return fig


def regression_figure(problem: ToyProblem, probe: dict[str, dict[str, Tensor]]) -> Figure:
    """One panel per model: truth, training data, predictive mean, +-2 std bands."""
    names = list(probe)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    x = problem.x_probe[:, 0].numpy()
    for ax, name in zip(axes.flat, names, strict=False):
        unc = probe[name]
        mean = unc["mean"].numpy()
        total, epi = unc["predictive"].numpy(), unc["epistemic"].numpy()
        ax.fill_between(x, mean - 2 * total, mean + 2 * total, color="tab:blue", alpha=0.2,
                        label="±2 std aleatoric+epistemic")
        ax.fill_between(x, mean - 2 * epi, mean + 2 * epi, color="tab:red", alpha=0.35,
                        label="±2 std epistemic")
        ax.plot(x, regression_function(problem.x_probe[:, 0]).numpy(), "k--", lw=1, label="truth")
        ax.plot(x, mean, color="tab:blue", lw=1.2, label="predictive mean")
        ax.scatter(problem.x_train[:, 0], problem.y_train, s=3, color="k", alpha=0.5)
        ax.axvspan(-12, -6, color="grey", alpha=0.08)
        ax.axvspan(6, 12, color="grey", alpha=0.08)
        ax.set_title(name, fontsize=10)
        ax.set_ylim(-25, 35)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper left")
    return fig
