"""Build the teacher and each student of a config (fresh weights, or for loading)."""

from __future__ import annotations

from typing import Any

from torch import nn

from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.stochastic import DirichletStudent, DropoutStudent, GaussianStudent
from hydraplus.experiments.presets import StudentSpec
from hydraplus.models.registry import build


def build_ensemble(config: dict[str, Any], batched: bool | None = None) -> Ensemble:
    arch = config["arch"]
    return Ensemble.from_factory(lambda: build(arch, "member"), config["ensemble"]["members"],
                                 batched)


def build_student(config: dict[str, Any], spec: StudentSpec, batched: bool | None = None) -> nn.Module:
    arch = config["arch"]
    core, head = build(arch, "core"), build(arch, "head")
    if spec.method in ("hydra", "hydra+"):
        heads = [head] + [build(arch, "head") for _ in range(spec.heads - 1)]
        return MultiHeadStudent(core, heads, batched)
    if spec.method == "drop":
        return DropoutStudent(core, head, spec.samples)
    if spec.method == "gauss":
        return GaussianStudent(core, head, spec.samples)
    return DirichletStudent(core, head, spec.samples, temperature=spec.t_mean)


def engine_method(spec: StudentSpec) -> str:
    """The StudentModule method for a preset: Hydra and Hydra+ share one."""
    return "hydra" if spec.method in ("hydra", "hydra+") else spec.method
