"""Export trained models for deployment, each with a JSON card.

Each model becomes ``NAME.pt2`` (`hydraplus.export.pt2`; load with
``torch.export.load(path).module()``, no hydraplus needed) and ``NAME.json``: what the input must be
(shape, and for images the normalisation the model was trained with) and what the output means.
Every exported program is re-loaded and checked against the model before success is reported.
EnDD is exported as its Dirichlet concentrations (torch.export cannot trace Dirichlet sampling,
and the concentrations define the whole predictive distribution). With ``format="onnx"`` each
model becomes ``NAME.onnx`` (one ONNX graph that also computes the mean prediction and the
predictive, aleatoric and epistemic uncertainty; see `hydraplus.export.onnx`) with its card
``NAME.onnx.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydraplus.export.onnx import describe, export_onnx
from hydraplus.export.pt2 import export_model
from hydraplus.io import atomic_write_text
from hydraplus.methods import get_method

FORMATS = ("pt2", "onnx")


def _deployable(model: nn.Module, method: str | None, task: str) -> tuple[nn.Module, str]:
    """The module to export and what its output means (a student's method decides; None: a teacher)."""
    if method is not None:
        return get_method(method).export_view(model, task)
    if task == "classification":
        return model, ("[batch, N, classes] logits of the N members; predictive probabilities = "
                       "softmax over classes, averaged over N")
    return model, "[batch, N, 2]: mean and log-variance of the N members"


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
