"""Figures of pooled image evaluations: test error against FLOPs, metrics and fidelity to the ensemble
against shift level, reliability diagrams, risk-coverage curves and the uncertainty histograms under
the 30% vertical shift (mean over seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hydraplus.metrics import SHIFT, shown, value
from hydraplus.report.compare import (
    Pooled,
    kind_title,
    level_path,
    shift_label,
    with_fidelity,
)
from hydraplus.report.figures import save_figure
from hydraplus.report.tables import get, mean_std

UNCERTAINTIES = ("predictive", "aleatoric", "epistemic")
PANELS_PER_ROW = 3


def _colors(pooled: Pooled) -> dict[str, tuple[float, ...]]:
    """One colour per model, the same in every figure."""
    cmap = plt.get_cmap("tab10" if len(pooled.models) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(pooled.models)}


def _kinds_grid(kinds: list[str]) -> tuple[Figure, list[Axes]]:
    """One panel per shift kind, at most `PANELS_PER_ROW` to a row, sharing the y axis."""
    cols = min(PANELS_PER_ROW, len(kinds))
    rows = math.ceil(len(kinds) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.6 * rows), squeeze=False,
                             sharey=True, layout="constrained")
    for ax in list(axes.flat)[len(kinds):]:
        ax.axis("off")
    return fig, list(axes.flat)[: len(kinds)]


def shift_figure(pooled: Pooled, metric: str, title: str, scale: float = 1.0,
                 section: str | None = None) -> Figure:
    """One panel per shift kind: ``metric`` (mean ± std over seeds) at clean and levels 1..5;
    ``section="fidelity"`` plots a fidelity measure (models other than the ensemble)."""
    kinds = list(pooled.settings["shift_levels"])
    colors = _colors(pooled)
    models = with_fidelity(pooled) if section == "fidelity" else pooled.models
    fig, axes = _kinds_grid(kinds)
    for ax, kind in zip(axes, kinds, strict=True):
        magnitudes = pooled.settings["shift_levels"][kind]
        x = np.arange(len(magnitudes) + 1)
        for name, rows in models.items():
            stats = [mean_std([get(r, *level_path(kind, level, metric, section)) for r in rows])
                     for level in [None, *range(len(magnitudes))]]
            mean = np.array([np.nan if s is None else scale * s[0] for s in stats])
            std = np.array([np.nan if s is None or s[1] is None else scale * s[1] for s in stats])
            ax.plot(x, mean, marker="o", ms=3, lw=1.2, color=colors[name], label=name)
            ax.fill_between(x, mean - std, mean + std, color=colors[name], alpha=0.15, lw=0)
        ax.set_xticks(x, ["clean"] + [shift_label(kind, m) for m in magnitudes], fontsize=6)
        ax.set_title(kind_title(kind, pooled.settings.get("corruptions", ())), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="y", labelleft=True)
    axes[0].set_ylabel(title)
    axes[-1].legend(fontsize=6, loc="best")
    return fig


def risk_coverage_figure(pooled: Pooled) -> Figure:
    """Each model's risk-coverage curve on the clean test set (mean over seeds), its AURC in the legend."""
    colors = _colors(pooled)
    fig, ax = plt.subplots(figsize=(4.6, 3.4), layout="constrained")
    for name, rows in pooled.models.items():
        curves = [r["risk_coverage"] for r in rows if get(r, "risk_coverage")]
        if not curves:
            continue
        risk = 100 * np.mean([c["risk"] for c in curves], axis=0)
        area = mean_std([get(r, "clean", "aurc") for r in rows])
        label = name if area is None else f"{name} (AURC {100 * area[0]:.2f}%)"
        reference = name.endswith("ensemble")
        ax.plot(100 * np.array(curves[0]["coverage"]), risk, color=colors[name],
                lw=2.0 if reference else 1.1, zorder=3 if reference else 2, label=label)
    ax.set_xlabel("coverage % (most confident inputs kept)")
    ax.set_ylabel("selective error %")
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
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
            found = [r for r in rows if get(r, "shift_histograms")]
            if not found:
                continue
            density = np.mean([r["shift_histograms"][kind] for r in found], axis=0)
            tv = mean_std([value(r, "tv", kind) for r in found])
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


def error_flops_figure(pooled: Pooled) -> Figure:
    """Clean test error against FLOPs per input (log scale): the ensemble, the members (their mean and
    the best) and every student, mean ± std over seeds; the choice between shipping one member, the
    ensemble or a student at a glance."""
    colors = _colors(pooled)
    fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
    for name, rows in pooled.models.items():
        flops = mean_std([get(r, "profile", "flops") for r in rows])
        error = mean_std([get(r, "clean", "error") for r in rows])
        if flops is None or error is None:
            continue
        short = name.split("/")[-1]
        marker = "s" if short == "ensemble" else "D" if short.startswith("member") else "o"
        ax.errorbar(flops[0], 100 * error[0], yerr=None if error[1] is None else 100 * error[1],
                    fmt=marker, ms=6 if marker != "o" else 5, capsize=3, color=colors[name], label=name,
                    mfc="none" if short == "member-best" else colors[name])
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per input")
    ax.set_ylabel("test error %")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="best")
    return fig


def write_figures(pooled: Pooled, out: Path) -> list[str]:
    """Save every figure the pooled data allows into ``out``; returns their file names."""
    out = Path(out)
    names: list[str] = []
    if pooled.has("profile", "flops") and pooled.has("clean", "error"):
        save_figure(error_flops_figure(pooled), out / "error-flops.png")
        names.append("error-flops.png")
    if pooled.has("shifts"):
        for metric in shown(SHIFT, pooled.task):
            if metric.group != "fidelity":
                name = f"shift-{metric.key.replace('_', '-')}.png"
                save_figure(shift_figure(pooled, metric.key, metric.title, metric.scale), out / name)
                names.append(name)
    if pooled.has("fidelity", "shifts"):
        for metric in shown(SHIFT, pooled.task):
            if metric.group == "fidelity":
                name = f"fidelity-{metric.key.replace('_', '-')}.png"
                save_figure(shift_figure(pooled, metric.key, metric.title, metric.scale, section="fidelity"),
                            out / name)
                names.append(name)
    if pooled.has("reliability"):
        save_figure(reliability_figure(pooled), out / "reliability.png")
        names.append("reliability.png")
    if pooled.has("risk_coverage"):
        save_figure(risk_coverage_figure(pooled), out / "risk-coverage.png")
        names.append("risk-coverage.png")
    if pooled.has("shift_histograms"):
        hist = pooled.settings["histogram"]
        name = f"histograms-{hist['kind']}-{shift_label(hist['kind'], hist['magnitude']).strip('%°×')}.png"
        save_figure(histogram_figure(pooled), out / name)
        names.append(name)
    return names
