"""Input checks inside the core, used wherever data enters hydraplus (API, data loaders, engine).

Each check raises with a message that names the tensor (or setting), what was found and what
was expected: ``ValueError`` for bad values and shapes, ``TypeError`` for bad dtypes,
``PermissionError`` for an output folder that cannot be written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from hydraplus.core.losses import TASKS
from hydraplus.core.modes import evaluating


def check_not_empty(tensor: Tensor, name: str) -> Tensor:
    """At least one example (first dimension)."""
    if tensor.dim() == 0 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must have at least one example, got shape {list(tensor.shape)}")
    return tensor


def check_finite(tensor: Tensor, name: str) -> Tensor:
    """No NaN or infinite entries (integer tensors always pass)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        nan = int(torch.isnan(tensor).sum())
        inf = int(tensor.numel() - finite.sum()) - nan
        first = tuple(torch.nonzero(~finite)[0].tolist())
        raise ValueError(
            f"{name} must be finite, but contains {nan} NaN and {inf} infinite values "
            f"(first at index {list(first)})"
        )
    return tensor


def check_shape(tensor: Tensor, shape: Sequence[int | None], name: str) -> Tensor:
    """``shape`` lists the expected size of every dimension; None means any size."""
    expected = list(shape)
    if tensor.dim() != len(expected) or any(
        e is not None and s != e for s, e in zip(tensor.shape, expected, strict=True)
    ):
        pattern = ", ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape [{pattern}], got {list(tensor.shape)}")
    return tensor


def check_dtype(tensor: Tensor, kind: str, name: str) -> Tensor:
    """``kind`` is ``float`` (any floating dtype) or ``integer`` (any integer dtype, not bool)."""
    if kind == "float":
        ok = tensor.is_floating_point()
        want = "a floating-point tensor"
    elif kind == "integer":
        ok = not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool
        want = "an integer tensor (class labels)"
    else:
        raise ValueError(f"dtype kind must be 'float' or 'integer', got {kind!r}")
    if not ok:
        raise TypeError(f"{name} must be {want}, got dtype {tensor.dtype}")
    return tensor


def check_labels(y: Tensor, num_classes: int, name: str) -> Tensor:
    """Integer class labels ``[B]`` in ``[0, num_classes)``."""
    if num_classes < 1:
        raise ValueError(f"number of classes must be >= 1, got {num_classes}")
    check_dtype(y, "integer", name)
    check_shape(y, [None], name)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise ValueError(
            f"{name} must be class labels in [0, {num_classes - 1}] ({num_classes} classes), "
            f"found {sorted(set(bad.tolist()))[:5]}"
        )
    return y


def check_targets(y: Tensor, task: str, num_classes: int, name: str) -> Tensor:
    """Labels for classification; finite float targets ``[B]`` for regression."""
    if task == "classification":
        return check_labels(y, num_classes, name)
    if task != "regression":
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    check_dtype(y, "float", name)
    check_shape(y, [None], name)
    return check_finite(y, name)


def check_dataset(x: Tensor, y: Tensor, task: str, num_classes: int, name: str) -> None:
    """Inputs ``x [B, ...]`` (finite floats) and targets ``y [B]`` of one split, e.g. ``train``."""
    check_not_empty(x, f"{name} inputs")
    check_dtype(x, "float", f"{name} inputs")
    check_finite(x, f"{name} inputs")
    check_targets(y, task, num_classes, f"{name} targets")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} inputs and targets must match in number, got {x.shape[0]} and {y.shape[0]}")


def check_inputs_like(x: Tensor, reference: Tensor, name: str) -> None:
    """``x`` holds examples of the training inputs' shape (``reference [B, ...]``): e.g. the test set
    or the OOD inputs, checked before any file is written."""
    if tuple(x.shape[1:]) != tuple(reference.shape[1:]):
        raise ValueError(f"{name} inputs have shape {list(x.shape[1:])} per example, the training inputs "
                         f"{list(reference.shape[1:])}")


def output_size(model: nn.Module, example: Tensor, name: str) -> int:
    """The size D of ``model``'s outputs ``[B, K, D]`` on one example (eval mode, global RNG untouched)."""
    try:
        with evaluating(model), torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(example[:1])
    except RuntimeError as err:
        raise ValueError(
            f"{name} cannot take inputs of shape {list(example.shape[1:])}: {str(err).splitlines()[0]}"
        ) from err
    return int(out.shape[-1])


def check_class_counts(data: int, teacher: int | None = None, student: int | None = None,
                       task: str = "classification") -> None:
    """Outputs per example of the data (classes, or 2 for regression), teacher and student agree."""
    what = "classes" if task == "classification" else "outputs (mean, log-variance)"
    for role, size in (("teacher", teacher), ("student", student)):
        if size is not None and size != data:
            raise ValueError(
                f"{role} outputs {size} values per example but the data has {data} {what}; "
                f"the {role}'s last layer must have {data} outputs"
            )


def check_output_dir_writable(path: str | Path) -> Path:
    """Create ``path`` if needed and check a file can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise PermissionError(
            f"output folder {path} is not writable ({err.strerror or type(err).__name__})"
        ) from err
    return path
