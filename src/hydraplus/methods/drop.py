"""Drop: one head whose last layer's input keeps dropout on at test time (MC dropout).

Its K = N samples are paired with the members in L3.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from hydraplus.core.stochastic import DropoutStudent
from hydraplus.methods.base import HeadFactory, StudentMethod, register
from hydraplus.spec import StudentDefaults, StudentSpec


@register
class Drop(StudentMethod):
    name = "drop"
    listed = 2
    student_type = DropoutStudent

    def defaults(self, shared: StudentDefaults, members: int) -> dict[str, Any]:
        return {"beta": 1.0, "samples": members}

    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        return DropoutStudent(core, head(), spec.samples)
