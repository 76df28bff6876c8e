"""Build a config's teacher and students (fresh weights, or shells to load weights into)."""

from __future__ import annotations

from torch import nn

from hydraplus.config import ExperimentConfig, StudentSpec
from hydraplus.core.containers import Ensemble
from hydraplus.core.memory_format import has_conv, use_channels_last
from hydraplus.methods import get_method
from hydraplus.models.registry import build


def build_ensemble(config: ExperimentConfig, batched: bool | None = None) -> Ensemble:
    """N freshly initialised members of the config's architecture."""
    ensemble = Ensemble.from_factory(lambda: build(config.arch, "member"), config.ensemble.members, batched)
    return _laid_out(config, ensemble)


def build_members(config: ExperimentConfig, ensemble: Ensemble) -> list[Ensemble]:
    """Each member of ``ensemble`` alone, as a one-member ensemble laid out as the config asks."""
    return [_laid_out(config, ensemble.member(i, lambda: build(config.arch, "member")))
            for i in range(ensemble.size)]


def build_student(config: ExperimentConfig, spec: StudentSpec, batched: bool | None = None) -> nn.Module:
    """The student of ``spec``: its method's model around a fresh core and fresh heads."""
    student = get_method(spec.method).build(build(config.arch, "core"), lambda: build(config.arch, "head"),
                                            spec, batched)
    return _laid_out(config, student)


def _laid_out(config: ExperimentConfig, model: nn.Module) -> nn.Module:
    """Convolutional models in channels-last layout unless the config turns it off (measured
    1.3-1.4x faster per distillation step on a 2-core CPU; the same numbers up to rounding), and
    compiled in place with ``torch.compile`` when the config asks (off by default: 1.4-3.4x
    slower per distillation step on that CPU, see docs/benchmarks/paths.md); the weights' names
    stay the same."""
    if config.channels_last and has_conv(model):
        use_channels_last(model)
    if config.compile:
        model.compile()
    return model
