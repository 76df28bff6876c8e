"""EnDD (ensemble distribution distillation): one head parameterising a Dirichlet.

Trained by the Dirichlet's negative log-likelihood of the members' class probabilities
(classification only); at test time it draws K = N probability vectors. It is exported as its
concentrations, which define the whole predictive distribution (sampling cannot be traced).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from hydraplus.core.losses import dirichlet_nll, l2_penalty
from hydraplus.core.precision import full_precision
from hydraplus.core.stochastic import DirichletStudent
from hydraplus.methods.base import HeadFactory, StudentMethod, register
from hydraplus.spec import StudentDefaults, StudentSpec


class DirichletConcentrations(nn.Module):
    """An EnDD student's Dirichlet concentrations ``[B, C]`` (the exportable part of it)."""

    def __init__(self, student: DirichletStudent):
        super().__init__()
        self.student = student

    def forward(self, x: Tensor) -> Tensor:
        return self.student.concentrations(x)


class ExportedDirichlet(DirichletStudent):
    """An EnDD student from its exported concentrations (`DirichletConcentrations` loaded back): it
    draws K probability vectors from the Dirichlet like the trained student."""

    def __init__(self, concentrations: nn.Module, samples: int):
        super().__init__(concentrations, nn.Identity(), samples)

    def head_logits(self, x: Tensor) -> Tensor:
        return self.concentrations(x).log()  # temperature 1: exp(log alpha) = alpha

    def concentrations(self, x: Tensor) -> Tensor:
        return self.core(x).float()


@register
class EnDD(StudentMethod):
    name = "endd"
    listed = 4
    tasks = ("classification",)
    student_type = DirichletStudent

    def defaults(self, shared: StudentDefaults, members: int) -> dict[str, Any]:
        return {"alpha": 0.0, "beta": 0.0, "samples": members}

    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        return DirichletStudent(core, head(), spec.samples, temperature=spec.t_mean)

    def loss_terms(self, student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, task: str,
                   spec: StudentSpec, lam: float) -> dict[str, Tensor]:
        assert isinstance(student, DirichletStudent)
        logits = student.head_logits(x)
        with full_precision():
            return {"endd": dirichlet_nll(logits.float(), teacher.float(), student.temperature),
                    "weight_decay": l2_penalty(self.decay_params(student))}

    def total(self, terms: dict[str, Tensor], spec: StudentSpec, lam: float) -> Tensor:
        return terms["endd"] + spec.weight_decay * terms["weight_decay"]

    def export_view(self, student: nn.Module, task: str) -> tuple[nn.Module, str]:
        assert isinstance(student, DirichletStudent)
        return DirichletConcentrations(student), (
            "[batch, classes] Dirichlet concentrations alpha; predictive probabilities = "
            "alpha / sum(alpha)")

    def from_export_view(self, view: nn.Module, spec: StudentSpec) -> nn.Module:
        return ExportedDirichlet(view, spec.samples)
