"""Export trained models for deployment: `torch.export` programs with a dynamic batch size.

Each model of a run becomes ``NAME.pt2`` (load with ``torch.export.load(path).module()``;
no hydraplus needed) and ``NAME.json``: what the input must be (shape, and for images the
normalisation the model was trained with) and what the output means. Every exported
program is re-loaded and checked against the model before the command reports success.
EnDD is exported as its Dirichlet concentrations (torch.export cannot trace Dirichlet
sampling, and the concentrations define the whole predictive distribution).
With ``format="onnx"`` each model becomes ``NAME.onnx`` (one ONNX graph that also computes the
mean prediction and the predictive, aleatoric and epistemic uncertainty; see
`hydraplus.experiments.onnx_export`) with its card ``NAME.onnx.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydraplus.config import ExperimentConfig
from hydraplus.experiments.runner import load_problem, load_trained, versions
from hydraplus.io import atomic_write_bytes, atomic_write_text
from hydraplus.methods import get_method

MAX_BATCH = 65536
TOLERANCE = 1e-5
FORMATS = ("pt2", "onnx")


def input_shape(meta: dict[str, Any], config: ExperimentConfig) -> list[int]:
    """One input's shape: ``[C, H, W]`` for image runs, ``[features]`` for toy runs."""
    if meta["kind"] == "image":
        return list(meta["normalization"]["image_shape"])
    problem = load_problem(config, meta["seed"], meta.get("data_path"))
    return list(problem.x_train.shape[1:])


def _deployable(model: nn.Module, method: str | None, task: str) -> tuple[nn.Module, str]:
    """The module to export and what its output means (a student's method decides; None: a teacher)."""
    if method is not None:
        return get_method(method).export_view(model, task)
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


def card_path(path: Path, format: str = "pt2") -> Path:
    """Where an export's JSON card goes: ``NAME.json`` beside ``NAME.pt2``, ``NAME.onnx.json`` beside
    ``NAME.onnx`` (so both formats of a model can share a folder)."""
    return path.with_name(path.name + ".json") if format == "onnx" else path.with_suffix(".json")


def export_with_card(model: nn.Module, method: str | None, task: str, example: torch.Tensor, path: Path,
                     format: str = "pt2", card: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a student of ``method``, or a teacher for None) to ``path`` in ``format``, checked
    against the model, and its JSON card: ``card``'s fields plus the task, the format, the input and
    output shapes, how to load it and, for ONNX, the measured max abs difference from PyTorch."""
    path = Path(path)
    if format == "onnx":
        from hydraplus.experiments.onnx_export import describe, export_onnx

        difference = export_onnx(model, example, path, task)
        fields = {**describe(model, example, task), "max_abs_difference": difference,
                  "load": f"onnxruntime.InferenceSession('{path.name}').run(None, {{'input': x}})"}
    elif format == "pt2":
        module, output = _deployable(model, method, task)
        export_model(module, example, path)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            shape = module(example).shape
        fields = {"output": output, "outputs": {"output": ["batch", *shape[1:]]},
                  "load": f"torch.export.load('{path.name}').module()"}
    else:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    card = {**(card or {}), "task": task, "format": format, "input_shape": ["batch", *example.shape[1:]],
            **fields}
    atomic_write_text(card_path(path, format), json.dumps(card, indent=2))
    return path


def export_run(run_dir: Path, out_dir: Path, names: list[str] | None = None, format: str = "pt2"
               ) -> list[Path]:
    """Export the models ``names`` (default: all) of one trained run into ``out_dir`` as ``format``
    (``"pt2"`` or ``"onnx"``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if format == "onnx":
        from hydraplus.experiments.onnx_export import require_onnx

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
