"""ONNX export: a model and its uncertainty decomposition as one graph with a dynamic batch size.

The graph's input is ``input`` ``[batch, ...]``; its outputs are the per-head (per-member or
per-sample) predictions and, computed in the graph, the mean prediction and the predictive,
aleatoric and epistemic uncertainty, so a runtime without hydraplus gets all of them in one run.
It is exported with ``torch.onnx.export(dynamo=True)`` (the exporter built on torch.export, which
needs onnxscript) and checked with onnxruntime against PyTorch on a batch of another size than the
traced one. EnDD is exported as its Dirichlet concentrations with the uncertainties in closed form.
Drop and Gauss sample at test time: their graphs sample too (``RandomUniformLike`` masks,
``RandomNormalLike`` noise), so every run draws fresh samples like the PyTorch model (onnxruntime
seeds them per process: ``onnxruntime.set_seed``); as the random streams differ from PyTorch's,
they are checked statistically (see `compare`). onnx, onnxruntime and onnxscript are optional
(``pip install 'hydraplus[onnx]'``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hydraplus.core.stochastic import DirichletStudent, DropoutStudent
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty
from hydraplus.io import atomic_write_bytes

MISSING = "ONNX export needs the optional packages onnx and onnxruntime: pip install 'hydraplus[onnx]'"
TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| of a deterministic graph
SAMPLING_DRAWS = 64  # draws per input of the statistical check of a sampling graph
SAMPLING_SIGMAS = 6.0  # its tolerance, in standard errors of the difference of two means
MAX_BATCH = 65536
INPUT = "input"


class OnnxUnavailableError(ImportError):
    """onnx, onnxruntime or onnxscript is not installed."""


def require_onnx() -> tuple[ModuleType, ModuleType]:
    """``(onnx, onnxruntime)``, or `OnnxUnavailableError` naming the extra that installs them
    (onnxscript too: torch.onnx's exporter imports it)."""
    try:
        modules = [importlib.import_module(name) for name in ("onnx", "onnxruntime", "onnxscript")]
    except ImportError as err:
        raise OnnxUnavailableError(f"{MISSING} (missing: {err.name})") from err
    return modules[0], modules[1]


def digamma(x: Tensor) -> Tensor:
    """The digamma function for ``x >= 1`` in elementary operations (ONNX has no digamma):
    six recurrence steps, then the asymptotic series; float32 accuracy."""
    shift = sum(1.0 / (x + k) for k in range(6))
    y = x + 6.0
    inv2 = y.pow(-2)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return y.log() - 0.5 / y - series - shift


def dirichlet_uncertainty(alpha: Tensor) -> dict[str, Tensor]:
    """Concentrations ``[B, C]`` to ``probs`` and the entropies in nats, each ``[B]``: predictive
    H(E p), aleatoric E H(p) and epistemic (their difference, the mutual information) — the limits,
    as K grows, of `classification_uncertainty` on K probability vectors drawn from the Dirichlet."""
    total = alpha.sum(-1, keepdim=True)
    probs = alpha / total
    predictive = -(probs * (alpha.log() - total.log())).sum(-1)
    aleatoric = (probs * (digamma(total + 1.0) - digamma(alpha + 1.0))).sum(-1)
    return {"probs": probs, "predictive": predictive, "aleatoric": aleatoric,
            "epistemic": (predictive - aleatoric).clamp_min(0.0)}


def uniform_dropout(x: Tensor, p: float) -> Tensor:
    """Dropout with probability ``p`` kept on at test time, its mask drawn from uniform noise."""
    return x * (torch.rand_like(x) >= p).to(x.dtype) / (1.0 - p)


class UniformDropout(nn.Module):
    """A `DropoutStudent` whose dropout masks come from uniform noise (ONNX ``RandomUniformLike``).

    onnxruntime's graph optimiser removes ONNX ``Dropout`` nodes even in training mode, which would
    silently make the exported student deterministic; the same masks from uniform noise it keeps."""

    def __init__(self, student: DropoutStudent):
        super().__init__()
        self.student = student

    def forward(self, x: Tensor) -> Tensor:
        s = self.student
        z = s.trunk(s.core(x))
        z = z.unsqueeze(1).expand(z.shape[0], s.samples, *z.shape[1:])
        return s.last(uniform_dropout(z, s.p))


class OnnxView(nn.Module):
    """A model with its derived outputs, in the order of ``names`` (the graph's output names)."""

    names: ClassVar[tuple[str, ...]]
    meaning: ClassVar[str]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model


class ClassificationView(OnnxView):
    names = ("outputs", "probs", "predictive", "aleatoric", "epistemic")
    meaning = ("outputs: [batch, K, classes] logits of the K heads, members or samples; probs: "
               "[batch, classes] softmax over classes averaged over K; predictive, aleatoric, epistemic: "
               "[batch] entropy of probs, mean entropy of the K predictions and their difference (mutual "
               "information), in nats")

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        parts = classification_uncertainty(out)
        return out, out.float().softmax(-1).mean(1), *(parts[name].float() for name in self.names[2:])


class RegressionView(OnnxView):
    names = ("outputs", "mean", "variance", "predictive", "aleatoric", "epistemic")
    meaning = ("outputs: [batch, K, 2] mean and log-variance of the K heads, members or samples; mean, "
               "variance: [batch] the moment-matched Gaussian mixture's; predictive, aleatoric, epistemic: "
               "[batch] variances (mean of the K variances plus variance of the K means; "
               "predictive = variance)")

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        parts = regression_uncertainty(out)
        mean = out[..., 0].float().mean(1)
        return out, mean, parts["predictive"], *(parts[name] for name in self.names[3:])


class DirichletView(OnnxView):
    names = ("concentrations", "probs", "predictive", "aleatoric", "epistemic")
    meaning = ("concentrations: [batch, classes] Dirichlet concentrations alpha; probs: [batch, classes] "
               "alpha / sum(alpha); predictive, aleatoric, epistemic: [batch] entropies in nats in closed "
               "form (H(E p), E H(p) and their difference; the limits of the sampled estimates as K grows)")

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        assert isinstance(self.model, DirichletStudent)
        alpha = self.model.concentrations(x)
        parts = dirichlet_uncertainty(alpha.float())
        return alpha, *(parts[name] for name in self.names[1:])


def onnx_view(model: nn.Module, task: str) -> OnnxView:
    """The module that is exported: ``model`` (eval mode) with its mean prediction and uncertainty."""
    model = model.eval()
    if isinstance(model, DirichletStudent):
        return DirichletView(model).eval()
    if isinstance(model, DropoutStudent):
        model = UniformDropout(model)
    if task == "classification":
        return ClassificationView(model).eval()
    if task == "regression":
        return RegressionView(model).eval()
    raise ValueError(f"unknown task {task!r}; expected classification or regression")


def traceable(example: Tensor) -> Tensor:
    """An example batch of at least two inputs (torch.export fixes a batch size of 1 as a constant)."""
    return example if example.shape[0] > 1 else torch.cat([example, example])


def samples(view: nn.Module, example: Tensor) -> bool:
    """Whether ``view`` draws random samples at test time (two random seeds, different outputs)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        first = view(example)
        torch.manual_seed(1)
        second = view(example)
    return not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def describe(model: nn.Module, example: Tensor, task: str) -> dict[str, Any]:
    """The model card's fields about an ONNX export of ``model``: outputs, their shapes and the check."""
    view = onnx_view(model, task)
    example = traceable(example)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        outs = view(example)
    check = (f"samples at test time, in the graph, fresh on every run like the PyTorch model: checked by "
             f"each output's mean over {SAMPLING_DRAWS} draws per input, within {SAMPLING_SIGMAS:g} standard "
             f"errors (+ {TOLERANCE:g}) of PyTorch's; max_abs_difference is between those means"
             if samples(view, example) else
             f"every output within {TOLERANCE:g} of PyTorch's (onnxruntime, on a batch size the export "
             "never saw)")
    return {"output": view.meaning, "check": check, "input_name": INPUT,
            "outputs": {name: ["batch", *out.shape[1:]] for name, out in zip(view.names, outs, strict=True)}}


def compare(view: OnnxView, session: Any, example: Tensor, path: Path) -> float:
    """Max |onnxruntime - PyTorch| over every output on a batch of another size than the traced one.

    A sampling graph is compared by each output's mean over `SAMPLING_DRAWS` draws per input (one
    batch with every input repeated) within `SAMPLING_SIGMAS` standard errors of the difference."""
    wider = torch.cat([example, example[:1]])
    draws = SAMPLING_DRAWS if samples(view, example) else 1
    repeated = wider.repeat(draws, *[1] * (wider.dim() - 1))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        expected = view(repeated)
    got = [torch.from_numpy(np.asarray(out)) for out in session.run(None, {INPUT: repeated.numpy()})]
    worst = 0.0
    for name, e, g in zip(view.names, expected, got, strict=True):
        if g.shape != e.shape:
            raise RuntimeError(f"the ONNX graph {path.name} gives {name} of shape {list(g.shape)}, "
                               f"PyTorch {list(e.shape)}")
        e, g = e.float().unflatten(0, (draws, -1)), g.float().unflatten(0, (draws, -1))
        difference = (g.mean(0) - e.mean(0)).abs()
        tolerance = torch.full_like(difference, TOLERANCE)
        if draws > 1:
            tolerance += SAMPLING_SIGMAS * ((e.var(0) + g.var(0)) / draws).sqrt()
        worst = max(worst, difference.max().item())
        if not (difference <= tolerance).all():
            raise RuntimeError(f"the ONNX graph {path.name} does not reproduce the model: {name} differs by "
                               f"up to {difference.max().item():.3g}")
    return worst


def export_onnx(model: nn.Module, example: Tensor, path: Path, task: str) -> float:
    """Export ``model`` with its uncertainty outputs (`onnx_view`) as an ONNX graph with a dynamic batch
    dimension, check it with onnxruntime, then write it atomically to ``path``.

    Returns the max |onnxruntime - PyTorch| over every output on a batch of another size than the
    traced one (raising if it is over `TOLERANCE`); for a sampling model, the max difference between
    the means over repeated draws, checked statistically (see `compare`)."""
    onnx, onnxruntime = require_onnx()
    view = onnx_view(model, task)
    example = traceable(example.float())
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.onnx.export(view, (example,), dynamo=True, input_names=[INPUT],
                                    output_names=list(view.names), dynamic_shapes=({0: batch},),
                                    verbose=False)
    assert program is not None
    data = program.model_proto.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    difference = compare(view, session, example, Path(path))
    atomic_write_bytes(Path(path), data)
    return difference

