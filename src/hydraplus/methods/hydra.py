"""Hydra+ (the paper's method) and Hydra: a shared core with M heads, one per member.

Both pair heads with members in L3 and match the ensemble's mean in L2; Hydra+ adds the
diversity term L4 on the heads' weights, weighted by lambda (per M, optionally ramped). Hydra
is the same student trained without L4 and with alpha = beta = 1 (individuality loss only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.losses import diversity_loss
from hydraplus.core.precision import full_precision
from hydraplus.methods.base import HeadFactory, StudentMethod, register
from hydraplus.spec import StudentDefaults, StudentSpec


@register
class HydraPlus(StudentMethod):
    """Multi-head student with L1-L3 and the diversity regulariser L4."""

    name = "hydra+"
    listed = 0
    multi_head = True
    uses_lambda = True
    student_type = MultiHeadStudent

    def student_name(self, spec: StudentSpec) -> str:
        """``hydra+-20``, and ``hydra+-20-auto`` with an automatic lambda."""
        return super().student_name(spec) + ("-auto" if spec.lam.auto else "")

    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        return MultiHeadStudent(core, [head() for _ in range(spec.heads)], batched)

    def loss_terms(self, student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, task: str,
                   spec: StudentSpec, lam: float) -> dict[str, Tensor]:
        terms = super().loss_terms(student, x, y, teacher, task, spec, lam)
        assert isinstance(student, MultiHeadStudent)
        with full_precision():
            terms["diversity"] = (diversity_loss([rows.float() for rows in student.head_weight_rows()])
                                  if lam > 0 else x.new_zeros((), dtype=torch.float32))
        return terms


@register
class Hydra(HydraPlus):
    """The Hydra baseline: the same student, individuality loss only, no diversity term."""

    name = "hydra"
    listed = 1
    uses_lambda = False

    def defaults(self, shared: StudentDefaults, members: int) -> dict[str, Any]:
        return {"alpha": 1.0, "beta": 1.0}
