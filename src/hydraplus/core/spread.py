"""Spread scaling (docs/method.md#spread-scaling): a multi-head student's epistemic uncertainty put
on the ensemble's scale after training, as temperature scaling puts its confidence on its accuracy.

A trained student's heads disagree less than the members they learnt from. One factor ``s`` moves
every head away from the heads' mean (``s > 1``) or toward it, input by input:

* classification: ``z_k = m + s (l_k - m)`` on the heads' logits ``l_k``, ``m = mean_k l_k``. Softmax
  ignores a constant per head, so the probabilities are those of ``c + s (log p_k - c)`` with
  ``c = mean_k log p_k`` (the same on log-probabilities), and ``s = 1`` returns the logits as they
  are: logit scores (energy, max logit) keep their scale;
* regression: ``mu_k' = m + s (mu_k - m)`` with ``m = mean_k mu_k``; the variances stay.

``s = 1`` is the student as trained. ``s`` is fitted on a validation split so that the student's
mean epistemic uncertainty there equals the teacher's (`fit_spread_scale`): in regression the
epistemic variance grows as ``s^2``, so ``s`` has a closed form; in classification the mutual
information grows with ``s`` and ``s`` is found by bisection. The mean prediction moves little;
the heads' disagreement, and so the epistemic uncertainty, moves with ``s``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty

SPREAD_RANGE = (1e-2, 1e2)  # a fitted scale is kept within it
BISECTION_STEPS = 60  # log s halves its bracket this often: far below float32's resolution


def _check_task(task: str) -> None:
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def _check(outputs: Tensor, task: str) -> None:
    _check_task(task)
    if outputs.dim() != 3 or (task == "regression" and outputs.shape[-1] != 2):
        shape = "[B, K, 2]" if task == "regression" else "[B, K, C]"
        raise ValueError(f"expected {task} outputs {shape}, got shape {tuple(outputs.shape)}")


def spread(outputs: Tensor, scale: float, task: str) -> Tensor:
    """``[B, K, ...]`` head outputs with each head moved ``scale`` times as far from the heads' mean
    (the module doc); classification gives logits, regression (mean, log-variance) pairs."""
    _check(outputs, task)
    _check_scale(scale)
    return _moved(outputs, scale, task)


def _check_scale(scale: float) -> None:
    if scale < 0 or not math.isfinite(scale):
        raise ValueError(f"spread scale must be finite and >= 0, got {scale}")


def _moved(outputs: Tensor, scale: float | Tensor, task: str) -> Tensor:
    """`spread` without the checks (``scale`` may be a tensor: traceable for export)."""
    # contiguous: the heads' mean rounds alike whatever the layout (a batched student's heads come
    # out head-major), so moving a student's saved outputs gives its forward pass's floats
    outputs = (outputs if outputs.dtype == torch.float64 else outputs.float()).contiguous()
    heads = outputs if task == "classification" else outputs[..., :1]  # logits, or the means
    centre = heads.mean(1, keepdim=True)
    moved = centre + scale * (heads - centre)
    return moved if task == "classification" else torch.cat([moved, outputs[..., 1:]], dim=-1)


def mean_epistemic(outputs: Tensor, task: str) -> float:
    """The mean epistemic uncertainty of ``[B, K, ...]`` outputs: mutual information in nats
    (classification) or the variance of the heads' means (regression)."""
    uncertainty = classification_uncertainty if task == "classification" else regression_uncertainty
    return uncertainty(outputs.double())["epistemic"].mean().item()


def fit_spread_scale(student: Tensor, teacher: Tensor, task: str) -> float:
    """The scale at which the student's mean epistemic uncertainty on some inputs (its outputs
    ``student`` ``[B, M, ...]``) equals the teacher's (``teacher`` ``[B, N, ...]``, the same inputs),
    within `SPREAD_RANGE`. Fit on a validation split, never on the test set."""
    _check(student, task)
    _check(teacher, task)
    if student.shape[0] != teacher.shape[0] or student.shape[0] == 0:
        raise ValueError(f"student outputs {tuple(student.shape)} and teacher outputs "
                         f"{tuple(teacher.shape)} must cover the same, non-empty inputs")
    student = student.double()
    measured, target = mean_epistemic(student, task), mean_epistemic(teacher, task)
    if not measured > 0:
        raise ValueError(f"the student's {student.shape[1]} heads agree on every input (epistemic "
                         "uncertainty 0): there is no spread to scale")
    low, high = SPREAD_RANGE
    if task == "regression":
        return min(max(math.sqrt(target / measured), low), high)
    lo, hi = math.log(low), math.log(high)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if mean_epistemic(spread(student, math.exp(mid), task), task) < target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


class SpreadScaled(nn.Module):
    """A multi-head student with its heads' spread scaled by ``scale`` (`spread`): the same
    ``[B, K, ...]`` outputs, for every evaluation, export and prediction path."""

    def __init__(self, student: nn.Module, scale: float, task: str):
        super().__init__()
        _check_task(task)
        _check_scale(scale)
        self.student, self.task = student, task
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.moved(self.student(x))

    def moved(self, student_outputs: Tensor) -> Tensor:
        """This model's outputs from its student's ``[B, M, ...]`` on the same inputs (in their dtype):
        an evaluation that ran the student already need not run it again."""
        _check(student_outputs, self.task)
        return _moved(student_outputs, self.scale, self.task).to(student_outputs.dtype)
