"""Export trained models for deployment: `torch.export` programs with a dynamic batch size.

Each model of a run becomes ``NAME.pt2`` (load with ``torch.export.load(path).module()``;
no hydraplus needed) and ``NAME.json``: what the input must be (shape, and for images the
normalisation the model was trained with) and what the output means. Every exported
program is re-loaded and checked against the model before the command reports success.
EnDD is exported as its Dirichlet concentrations (torch.export cannot trace Dirichlet
sampling, and the concentrations define the whole predictive distribution).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydraplus.config import ExperimentConfig, StudentSpec
from hydraplus.experiments.runner import load_problem, load_trained, versions
from hydraplus.io import atomic_write_bytes, atomic_write_text
from hydraplus.methods import get_method

MAX_BATCH = 65536
TOLERANCE = 1e-5


def input_shape(meta: dict[str, Any], config: ExperimentConfig) -> list[int]:
    """One input's shape: ``[C, H, W]`` for image runs, ``[features]`` for toy runs."""
    if meta["kind"] == "image":
        return list(meta["normalization"]["image_shape"])
    problem = load_problem(config, meta["seed"], meta.get("data_path"))
    return list(problem.x_train.shape[1:])


def _deployable(name: str, model: nn.Module, specs: dict[str, StudentSpec], task: str
                ) -> tuple[nn.Module, str]:
    """The module to export and what its output means (a student's method decides)."""
    if name in specs:
        return get_method(specs[name].method).export_view(model, task)
    if task == "classification":
        return model, ("[batch, N, classes] logits of the N members; predictive probabilities = "
                       "softmax over classes, averaged over N")
    return model, "[batch, N, 2]: mean and log-variance of the N members"


def export_model(model: nn.Module, example: torch.Tensor, path: Path) -> torch.export.ExportedProgram:
    """Export ``model`` (eval mode) with a dynamic batch dimension, check that the serialised
    program reproduces the model's outputs (same random seed for sampling models), then write
    it atomically to ``path``."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    wider = torch.cat([example, example[:1]])  # another batch size than the traced one
    with torch.no_grad(), torch.random.fork_rng():  # the caller's random state is left alone
        torch.manual_seed(0)
        expected = model(wider)
        torch.manual_seed(0)
        got = loaded(wider)
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=0, atol=TOLERANCE):
        raise RuntimeError(f"the exported program for {path.name} does not reproduce the model "
                           f"(max difference {(got - expected).abs().max().item():.3g})")
    atomic_write_bytes(path, buffer.getvalue())
    return program


def export_run(run_dir: Path, out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """Export the models ``names`` (default: all) of one trained run into ``out_dir``."""
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
        path = Path(out_dir) / f"{name}.pt2"
        module, output = _deployable(name, models[name], trained.specs, task)
        export_model(module, example, path)
        card = {
            "model": name, "task": task, "input_shape": ["batch", *shape],
            "input": ("images normalised as (x / 255 - mean) / std per channel"
                      if meta["kind"] == "image" else "raw features, as in training"),
            "normalization": meta.get("normalization"), "output": output,
            "run": str(Path(run_dir)), "seed": meta["seed"], "versions": versions(),
            "load": f"torch.export.load('{path.name}').module()",
        }
        atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2))
        written.append(path)
    return written
