"""Gauss: one head whose last Linear layer has factorised Gaussian weights.

Trained with L1-L3 on its K = N samples plus ``kl_coeff`` times the KL to N(0, 1); its
log-variances get no weight decay.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from hydraplus.core.precision import full_precision
from hydraplus.core.stochastic import GaussianStudent
from hydraplus.methods.base import HeadFactory, StudentMethod, register
from hydraplus.spec import StudentDefaults, StudentSpec


@register
class Gauss(StudentMethod):
    name = "gauss"
    listed = 3
    student_type = GaussianStudent

    def defaults(self, shared: StudentDefaults, members: int) -> dict[str, Any]:
        return {"beta": 1.0, "samples": members, "kl_coeff": shared.kl_coeff}

    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        return GaussianStudent(core, head(), spec.samples)

    def loss_terms(self, student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, task: str,
                   spec: StudentSpec, lam: float) -> dict[str, Tensor]:
        terms = super().loss_terms(student, x, y, teacher, task, spec, lam)
        assert isinstance(student, GaussianStudent)
        with full_precision():
            terms["kl"] = student.kl()
        return terms

    def decay_params(self, student: nn.Module) -> list[Tensor]:
        """Every parameter except the Bayesian layer's (its prior already regularises it)."""
        assert isinstance(student, GaussianStudent)
        skip = {id(p) for p in student.last.parameters()}
        return [p for p in student.parameters() if id(p) not in skip]
