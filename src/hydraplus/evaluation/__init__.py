"""One evaluation: `evaluate` takes any set of models and a suite and gives the one evaluation schema
that every run folder's ``evaluation.json`` holds and ``hydraplus compare`` reads::

    {"kind": "toy" | "image" | "distil", "task": "classification" | "regression", "schema": 2,
     "models": {name: row}, "problem": {...}, "settings": {...}, "record": {...},
     "members": {"count", "best", "selected_by", "scores", "rows": [each member's row]}}

Every row, whatever the suite, keeps each group of metrics at the same place
(`hydraplus.metrics.PLACES`): test-set metrics under ``clean``, then ``ood``, ``tv``, ``profile``,
``fidelity``, ``probe``, ``early_stopping`` and ``train_seconds``; the shared groups are computed once
(`hydraplus.evaluation.rows`). Evaluations written before schema 2 are upgraded on read
(`hydraplus.metrics.upgrade`).

A suite says what the models are measured on and how: `ToySuite` (a toy problem: test metrics,
off-data uncertainty, cost), `ImageSuite` (an image problem: clean, dataset shifts and corruptions,
OOD detection, fidelity to the ensemble, cost) and `HeldOutSuite` (test tensors given by the caller,
with OOD inputs: a teacher beside its student). Every suite scores the reference model's members
alone too (rows ``member`` and ``member-best``, `hydraplus.evaluation.members`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from hydraplus.evaluation.held_out import HeldOutSuite
from hydraplus.evaluation.images import LATENCY_BATCH_SIZES, ImageSuite
from hydraplus.evaluation.toy import ToySuite

__all__ = ["HeldOutSuite", "ImageSuite", "Models", "Settings", "Suite", "ToySuite", "evaluate"]


@dataclass
class Models:
    """The models of one evaluation: ``models`` by name with the ``reference`` (the ensemble or teacher,
    whose members are also scored alone) among them; ``members``: its members as one-member modules
    (for their cost; None where it is not made of modules); per student its training time, early
    stopping record and settings (``specs``: `StudentSpec.to_dict`); ``member_validation``: each
    member's validation error and NLL, where a validation split chose the best member;
    ``spread_scales``: each spread-scaled row's scale fitted by an earlier evaluation, used where
    the suite has no validation split to fit it on (`hydraplus.evaluation.spread`)."""

    models: dict[str, nn.Module]
    reference: str = "ensemble"
    members: Sequence[nn.Module] | None = None
    train_seconds: dict[str, float] = field(default_factory=dict)
    early_stopping: dict[str, dict[str, Any]] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    member_validation: dict[str, list[float]] | None = None
    spread_scales: dict[str, float] = field(default_factory=dict)  # fitted before, by spread row name


@dataclass(frozen=True)
class Settings:
    """How to evaluate: sampling students draw from ``seed`` (the caller's random state is left
    alone), models run in ``precision`` on ``device``, latency is timed at ``latency_batches``."""

    seed: int = 0
    precision: str = "32"
    latency_batches: Sequence[int] = LATENCY_BATCH_SIZES
    device: str = "cpu"


class Suite(Protocol):
    """What models are measured on, and how (`ToySuite`, `ImageSuite`, `HeldOutSuite`)."""

    kind: str

    def evaluate(self, models: Models, settings: Settings) -> dict[str, Any]: ...


def evaluate(models: Models | dict[str, nn.Module], suite: Suite, *, seed: int = 0, precision: str = "32",
             latency_batches: Sequence[int] = LATENCY_BATCH_SIZES, device: str = "cpu") -> dict[str, Any]:
    """``models`` measured by ``suite``: the evaluation schema above (a plain dict of models is
    taken with ``"ensemble"`` as the reference)."""
    if not isinstance(models, Models):
        models = Models(dict(models))
    if models.reference not in models.models and suite.kind != "distil":
        raise ValueError(f"the evaluation needs the reference model {models.reference!r} among the models "
                         f"{sorted(models.models)}")
    settings = Settings(seed, precision, tuple(int(b) for b in latency_batches), str(device))
    return suite.evaluate(models, settings)
