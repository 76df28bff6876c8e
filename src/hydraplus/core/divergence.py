"""KL divergence from a teacher's predictive distribution to a student's (docs/method.md#early-stopping).

Classification: the categorical mean predictions (the mean softmax over members, heads or samples),
as in the fidelity measure ``kl``. Regression: the moment-matched Gaussians of the two mixtures
(a mixture's KL has no closed form), as in the regression aggregation loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.losses import check_task, gaussian_kl, moment_matched
from hydraplus.core.uncertainty import log_predictive


def predictive_kl(student: Tensor, teacher: Tensor, task: str) -> float:
    """Mean over inputs of KL(teacher's predictive || student's predictive), in nats.

    ``student [B, K, D]`` and ``teacher [B, N, D]`` are outputs on the same B inputs (logits, or
    mean and log-variance for regression). Non-finite outputs give ``inf`` (never an improvement).
    """
    check_task(task)
    if student.dim() != 3 or teacher.dim() != 3 or student.shape[::2] != teacher.shape[::2]:
        raise ValueError(f"expected student [B, K, D] and teacher [B, N, D] outputs on the same inputs, got "
                         f"shapes {tuple(student.shape)} and {tuple(teacher.shape)}")
    if not (torch.isfinite(student).all() and torch.isfinite(teacher).all()):
        return math.inf
    if task == "classification":
        kl = F.kl_div(log_predictive(student), log_predictive(teacher), reduction="none",
                      log_target=True).sum(-1)
    else:
        kl = gaussian_kl(*moment_matched(teacher.double()), *moment_matched(student.double()))
    value = kl.clamp_min(0.0).mean().item()  # KL >= 0; clamp round-off
    return value if math.isfinite(value) else math.inf
