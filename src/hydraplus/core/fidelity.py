"""Per-input fidelity of a student to the ensemble it imitates (docs/method.md#fidelity-to-the-ensemble).

Dataset-level error or calibration can match while the student disagrees with the ensemble input by
input; these measures compare the two models' predictions on the same inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from hydraplus.core.checks import check_finite
from hydraplus.core.metrics import LOCAL
from hydraplus.core.ranks import spearman
from hydraplus.core.uncertainty import classification_uncertainty, log_predictive


class Fidelity(Metric):
    """Student-to-ensemble fidelity accumulated over batches; ``compute()`` returns

    * ``epistemic_spearman``: Spearman rank correlation, over all inputs seen, of the student's and
      the ensemble's epistemic uncertainty (mutual information, float64), average ranks for ties;
      0 when either is constant;
    * ``agreement``: share of inputs whose mean predictions have the same argmax class;
    * ``kl``: mean over inputs of KL(ensemble mean prediction || student mean prediction), in nats.

    Spearman needs every value at once, so the per-input uncertainties are stored.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__(**LOCAL)  # one process's state (see hydraplus.core.metrics)
        self.add_state("student_epistemic", [], dist_reduce_fx="cat")
        self.add_state("ensemble_epistemic", [], dist_reduce_fx="cat")
        self.add_state("agreements", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("kl_total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, student_logits: Tensor, ensemble_logits: Tensor) -> None:
        """student logits ``[B, K, C]`` (K heads/samples), ensemble logits ``[B, N, C]`` (N members)."""
        if student_logits.dim() != 3 or ensemble_logits.dim() != 3:
            raise ValueError(
                f"expected student [B, K, C] and ensemble [B, N, C] logits, got shapes "
                f"{tuple(student_logits.shape)} and {tuple(ensemble_logits.shape)}"
            )
        if student_logits.shape[::2] != ensemble_logits.shape[::2]:
            raise ValueError(
                f"student logits {tuple(student_logits.shape)} and ensemble logits "
                f"{tuple(ensemble_logits.shape)} differ in inputs or classes"
            )
        check_finite(student_logits, "student logits")
        check_finite(ensemble_logits, "ensemble logits")
        student, ensemble = student_logits.detach().cpu(), ensemble_logits.detach().cpu()
        self.student_epistemic.append(classification_uncertainty(student)["epistemic"])
        self.ensemble_epistemic.append(classification_uncertainty(ensemble)["epistemic"])
        log_student, log_ensemble = log_predictive(student), log_predictive(ensemble)
        self.agreements += (log_student.argmax(-1) == log_ensemble.argmax(-1)).sum()
        kl = F.kl_div(log_student, log_ensemble, reduction="none", log_target=True).sum(-1)
        self.kl_total += kl.clamp_min(0.0).sum()  # KL >= 0; clamp round-off
        self.count += student.shape[0]

    def compute(self) -> dict[str, float]:
        if self.count < 2:
            raise ValueError(f"Fidelity needs at least 2 inputs (a rank correlation), got {int(self.count)}")
        student, ensemble = dim_zero_cat(self.student_epistemic), dim_zero_cat(self.ensemble_epistemic)
        return {
            "epistemic_spearman": spearman(student, ensemble),
            "agreement": (self.agreements / self.count).item(),
            "kl": (self.kl_total / self.count).item(),
        }


def fidelity(student_logits: Tensor, ensemble_logits: Tensor) -> dict[str, float]:
    """`Fidelity` of student logits ``[B, K, C]`` to ensemble logits ``[B, N, C]`` on the same inputs."""
    metric = Fidelity()
    metric.update(student_logits, ensemble_logits)
    return metric.compute()
