"""Spread-scaled rows (`hydraplus.core.spread`): every multi-head student of an image evaluation again, its
heads' spread fitted on the validation split so that its mean epistemic uncertainty there equals
the reference's (the ensemble's); on data without a validation split (``hydraplus evaluate --data``)
the scale the run's own evaluation fitted. The row is named ``<student>-spread``, is measured like every
other model (test, shifts, OOD, fidelity, cost) and keeps the fitted scale under ``spread_scale``.
It is the same trained student: its training time and early stopping are the student's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from hydraplus.core.predict import predict
from hydraplus.core.spread import SpreadScaled, fit_spread_scale
from hydraplus.methods import get_method, method_names

if TYPE_CHECKING:
    from hydraplus.evaluation import Models

SUFFIX = "-spread"


def _multi_head(spec: dict[str, Any]) -> bool:
    method = spec.get("method")
    return method in method_names() and get_method(method).multi_head


def with_spread_scaled(models: Models, x_val: Tensor, task: str, precision: str = "32"
                       ) -> tuple[Models, dict[str, float]]:
    """``models`` with a ``<student>-spread`` model after each multi-head student (those whose spec
    names a multi-head method), and the scale of each: fitted on ``x_val``, or without validation
    inputs the scale an earlier evaluation fitted (``models.spread_scales``; none: no row)."""
    students = [name for name, spec in models.specs.items() if name in models.models and _multi_head(spec)]
    if len(x_val) == 0:
        students = [name for name in students if name + SUFFIX in models.spread_scales]
    if not students:
        return models, {}
    reference = None
    if len(x_val):
        with torch.random.fork_rng(devices=[]):
            reference = predict(models.models[models.reference], x_val, precision=precision)
    out, scales = {}, {}
    for name, model in models.models.items():
        out[name] = model
        if name in students:
            scale = (models.spread_scales[name + SUFFIX] if reference is None else
                     fit_spread_scale(predict(model, x_val, precision=precision), reference, task))
            out[name + SUFFIX] = SpreadScaled(model, scale, task)
            scales[name + SUFFIX] = scale

    def copied(per_model: dict[str, Any]) -> dict[str, Any]:
        return {**per_model, **{name + SUFFIX: per_model[name] for name in students if name in per_model}}

    return replace(models, models=out, train_seconds=copied(models.train_seconds),
                   early_stopping=copied(models.early_stopping), specs=copied(models.specs)), scales


def record_scales(evaluation: dict[str, Any], scales: dict[str, float]) -> dict[str, Any]:
    """``evaluation`` with each spread-scaled row's fitted scale in it (``spread_scale``)."""
    for name, scale in scales.items():
        evaluation["models"][name]["spread_scale"] = scale
    return evaluation
