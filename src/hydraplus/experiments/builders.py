"""Build a config's teacher and students (fresh weights, or shells to load weights into)."""

from __future__ import annotations

from torch import nn

from hydraplus.config import ExperimentConfig, StudentSpec
from hydraplus.core.containers import Ensemble
from hydraplus.methods import get_method
from hydraplus.models.registry import build


def build_ensemble(config: ExperimentConfig, batched: bool | None = None) -> Ensemble:
    """N freshly initialised members of the config's architecture."""
    return Ensemble.from_factory(lambda: build(config.arch, "member"), config.ensemble.members, batched)


def build_student(config: ExperimentConfig, spec: StudentSpec, batched: bool | None = None) -> nn.Module:
    """The student of ``spec``: its method's model around a fresh core and fresh heads."""
    return get_method(spec.method).build(build(config.arch, "core"), lambda: build(config.arch, "head"),
                                         spec, batched)
