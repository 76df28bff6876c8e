"""Export the models of a trained run folder (`hydraplus export`): each as a program and its card
(see `hydraplus.export.cards`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hydraplus.config import ExperimentConfig
from hydraplus.export.cards import FORMATS, export_with_card
from hydraplus.export.onnx import require_onnx
from hydraplus.pipeline.config_run import load_problem, load_trained
from hydraplus.pipeline.run_folder import versions


def input_shape(meta: dict[str, Any], config: ExperimentConfig) -> list[int]:
    """One input's shape: ``[C, H, W]`` for image runs, ``[features]`` for toy runs."""
    if meta["kind"] == "image":
        return list(meta["normalization"]["image_shape"])
    problem = load_problem(config, meta["seed"], meta.get("data_path"))
    return list(problem.x_train.shape[1:])


def export_run(run_dir: Path, out_dir: Path, names: list[str] | None = None, format: str = "pt2"
               ) -> list[Path]:
    """Export the models ``names`` (default: all) of one trained run into ``out_dir`` as ``format``
    (``"pt2"`` or ``"onnx"``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if format == "onnx":
        require_onnx()  # before any work
    meta, config, trained = load_trained(run_dir)
    models = trained.all()
    unknown = sorted(set(names or []) - set(models))
    if unknown:
        raise ValueError(f"{run_dir} has no model(s) {unknown}; it has {sorted(models)}")
    shape = input_shape(meta, config)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, *shape, generator=generator)
    task = config.task
    written = []
    for name in names or list(models):
        method = trained.specs[name].method if name in trained.specs else None
        card = {"model": name,
                "input": ("images normalised as (x / 255 - mean) / std per channel"
                          if meta["kind"] == "image" else "raw features, as in training"),
                "normalization": meta.get("normalization"), "run": str(Path(run_dir)), "seed": meta["seed"],
                "versions": versions()}
        written.append(export_with_card(models[name], method, task, example,
                                        Path(out_dir) / f"{name}.{format}", format, card))
    return written
