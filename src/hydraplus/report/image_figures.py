"""Figures of pooled image evaluations: metrics against shift level, reliability diagrams and
the uncertainty histograms under the 30% vertical shift (mean over seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from hydraplus.report.compare import SHIFT_METRICS, Pooled, shift_label
from hydraplus.report.figures import save_figure
from hydraplus.report.tables import get, mean_std

UNCERTAINTIES = ("predictive", "aleatoric", "epistemic")


def _colors(pooled: Pooled) -> dict[str, tuple[float, ...]]:
    """One colour per model, the same in every figure."""
    cmap = plt.get_cmap("tab10" if len(pooled.models) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(pooled.models)}


def shift_figure(pooled: Pooled, metric: str, title: str, scale: float = 1.0) -> Figure:
    """One panel per shift kind: ``metric`` (mean ± std over seeds) at clean and levels 1..5."""
    kinds = list(pooled.settings["shift_levels"])
    colors = _colors(pooled)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.3 * len(kinds), 3.0), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, kind in zip(axes[0], kinds, strict=True):
        magnitudes = pooled.settings["shift_levels"][kind]
        x = np.arange(len(magnitudes) + 1)
        for name, rows in pooled.models.items():
            stats = [mean_std([get(r, "clean", metric) for r in rows])]
            stats += [mean_std([get(r, "shifts", kind, i, metric) for r in rows])
                      for i in range(len(magnitudes))]
            mean = np.array([np.nan if s is None else scale * s[0] for s in stats])
            std = np.array([np.nan if s is None or s[1] is None else scale * s[1] for s in stats])
            ax.plot(x, mean, marker="o", ms=3, lw=1.2, color=colors[name], label=name)
            ax.fill_between(x, mean - std, mean + std, color=colors[name], alpha=0.15, lw=0)
        ax.set_xticks(x, ["clean"] + [shift_label(kind, m) for m in magnitudes], fontsize=7)
        ax.set_title(f"{kind} shift", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(title)
    axes[0, -1].legend(fontsize=7, loc="best")
    return fig


def reliability_figure(pooled: Pooled) -> Figure:
    """One reliability diagram per model on the clean test set, bins pooled over seeds."""
    names = [n for n, rows in pooled.models.items() if any(get(r, "reliability") for r in rows)]
    cols = min(4, len(names))
    n_rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(2.6 * cols, 2.6 * n_rows), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    colors = _colors(pooled)
    for ax, name in zip(axes.flat, names, strict=False):
        rel = [r["reliability"] for r in pooled.models[name] if get(r, "reliability")]
        count = np.sum([np.array(r["count"], dtype=float) for r in rel], axis=0)
        correct = np.sum([np.array([(a or 0.0) * n for a, n in zip(r["accuracy"], r["count"], strict=True)])
                          for r in rel], axis=0)
        bins = len(count)
        edges = np.linspace(0.0, 1.0, bins + 1)
        accuracy = np.divide(correct, count, out=np.zeros(bins), where=count > 0)
        ax.bar(edges[:-1], accuracy, width=1.0 / bins, align="edge", color=colors[name],
               edgecolor="k", lw=0.5, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ece = mean_std([get(r, "clean", "ece") for r in pooled.models[name]])
        ax.set_title(name if ece is None else f"{name} (ECE {100 * ece[0]:.1f}%)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("confidence")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    return fig


def histogram_figure(pooled: Pooled) -> Figure:
    """Predictive, aleatoric and epistemic entropy histograms under the histogram shift (mean over
    seeds), each model's total variation to the ensemble in the legend."""
    hist = pooled.settings["histogram"]
    colors = _colors(pooled)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), squeeze=False, layout="constrained")
    edges = np.linspace(0.0, hist["upper"], hist["bins"] + 1)
    for ax, kind in zip(axes[0], UNCERTAINTIES, strict=True):
        last_bin = 0  # the panel ends after the last bin any model fills (epistemic stays low)
        for name, rows in pooled.models.items():
            found = [r["shift_histograms"] for r in rows if get(r, "shift_histograms")]
            if not found:
                continue
            density = np.mean([h[kind] for h in found], axis=0)
            tv = mean_std([h["tv"][kind] for h in found])
            label = name if name.endswith("ensemble") else (
                f"{name} (TV {tv[0]:.3f}" + ("" if tv[1] is None else f" ± {tv[1]:.3f}") + ")")
            reference = name.endswith("ensemble")
            ax.stairs(density, edges, color=colors[name], lw=2.0 if reference else 1.1,
                      zorder=3 if reference else 2, label=label)
            last_bin = max(last_bin, int(np.flatnonzero(density).max(initial=0)))
        ax.set_xlim(0.0, edges[min(last_bin + 2, len(edges) - 1)])
        ax.set_title(f"{kind} entropy, {hist['kind']} shift {shift_label(hist['kind'], hist['magnitude'])}",
                     fontsize=10)
        ax.set_xlabel("nats")
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("fraction of test images")
    return fig


def write_figures(pooled: Pooled, out: Path) -> list[str]:
    """Save every figure the pooled data allows into ``out``; returns their file names."""
    out = Path(out)
    names: list[str] = []
    if pooled.has("shifts"):
        for key, title, scale, _ in SHIFT_METRICS:
            name = f"shift-{key.replace('_', '-')}.png"
            save_figure(shift_figure(pooled, key, title, scale), out / name)
            names.append(name)
    if pooled.has("reliability"):
        save_figure(reliability_figure(pooled), out / "reliability.png")
        names.append("reliability.png")
    if pooled.has("shift_histograms"):
        hist = pooled.settings["histogram"]
        name = f"histograms-{hist['kind']}-{shift_label(hist['kind'], hist['magnitude']).strip('%°×')}.png"
        save_figure(histogram_figure(pooled), out / name)
        names.append(name)
    return names
