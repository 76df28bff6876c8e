"""Any run folder read back as one `Run`, whatever made it: its models (the reference first), the
suite that evaluates them, and what an export needs. `open_run` is the one place that asks which
kind of run a folder holds (a config run's ``toy`` or ``image``, or ``distil``); ``hydraplus
evaluate``, ``compare``, ``export`` and `hydraplus.api` take a `Run` as it comes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydraplus.config import ExperimentConfig
from hydraplus.data.images import Normalization, attach_ood, load_test_problem
from hydraplus.data.problem import Problem
from hydraplus.data.sources import HOLDOUT_KEY
from hydraplus.evaluation import HeldOutSuite, Models, Suite
from hydraplus.evaluation.spread import SUFFIX, with_spread_scaled
from hydraplus.inputs.arrays import as_tensors, normalize, npz_test_split, ood_inputs
from hydraplus.inputs.contracts import read_targets
from hydraplus.pipeline.config_run import evaluation_models, load_problem, load_trained, suite_for
from hydraplus.pipeline.distil import Distilled, load_distilled
from hydraplus.pipeline.run_folder import DISTIL, read_meta, read_spread_scales, spread_scale_text

# the suite of a run for the test data, OOD data and shifts asked for
SuiteMaker = Callable[[Path | None, Path | None, bool], Suite]


@dataclass
class Run:
    """One run folder's models and how to evaluate and export them."""

    folder: Path
    kind: str  # "toy", "image" or "distil"
    task: str
    seed: int
    models: Models
    methods: dict[str, str | None]  # each model's method (None: the ensemble or teacher)
    precision: str
    input_shape: list[int]
    input_text: str  # what the inputs must be, for export cards
    normalization: dict[str, Any] | None
    suite: SuiteMaker
    pt2_only: tuple[str, ...] = ()  # models exported as programs only (a distil run's teacher)
    evaluation_seed: int = 0  # what sampling students draw from when evaluated

    def exportable(self, format: str) -> dict[str, tuple[nn.Module, str | None]]:
        """The models an export in ``format`` writes, with their methods: every model, and each
        spread-scaled student of the run's evaluation (`hydraplus.evaluation.spread`)."""
        models = with_spread_scaled(self.models, torch.empty(0), self.task)[0].models
        return {name: (model, self.methods[name] if name in self.methods else
                       self.methods[name.removesuffix(SUFFIX)])
                for name, model in models.items() if format == "pt2" or name not in self.pt2_only}


def open_run(folder: Path) -> Run:
    """The run in ``folder`` (one with a ``config.json``)."""
    folder = Path(folder)
    if read_meta(folder).get("kind") == DISTIL:
        return _distil_run(folder)
    return _config_run(folder)


def _config_run(folder: Path) -> Run:
    meta, config, trained = load_trained(folder)
    models = replace(evaluation_models(config, trained), spread_scales=read_spread_scales(folder))
    methods: dict[str, str | None] = {name: (trained.specs[name].method if name in trained.specs else None)
                                      for name in models.models}
    image = meta["kind"] == "image"
    shape = (list(meta["normalization"]["image_shape"]) if image
             else list(load_problem(config, meta["seed"], meta.get("data_path")).x_train.shape[1:]))

    def suite(data: Path | None, ood: Path | None, shifts: bool) -> Suite:
        if not image:
            if data is not None or ood is not None:
                raise ValueError(f"--data and --ood apply to image runs only; {folder} uses toy data "
                                 f"{config.data.name!r}")
            return suite_for(config, load_problem(config, meta["seed"]))
        return suite_for(config, image_problem(meta, config, data, ood), shifts)

    return Run(folder, meta["kind"], config.task, meta["seed"], models, methods, config.precision, shape,
               "images normalised as (x / 255 - mean) / std per channel" if image
               else "raw features, as in training", meta.get("normalization"), suite,
               evaluation_seed=meta["seed"])


def image_problem(meta: dict[str, Any], config: ExperimentConfig, data: Path | None, ood: Path | None
                  ) -> Problem:
    """An image run's own test data, or ``data`` normalised like the run's training data; ``ood`` (an
    .npz) as probe, made grey and resized as the run's ``data.ood`` asks."""
    if data is None:
        problem = load_problem(config, meta["seed"], meta.get("data_path"), meta.get("ood_path"))
    elif HOLDOUT_KEY in config.data.options:
        held_out = config.data.options[HOLDOUT_KEY]
        raise ValueError(f"--data: the run leaves classes {held_out} out of training; "
                         "evaluate it on its own test data (leave out --data)")
    else:
        saved = meta.get("normalization")
        if saved is None:  # a run from before the statistics were saved: recompute them
            norm = load_problem(config, meta["seed"], meta.get("data_path")).normalization
            shape = None
        else:
            norm, shape = Normalization(tuple(saved["mean"]), tuple(saved["std"])), saved["image_shape"]
        problem = load_test_problem(data, norm, image_shape=shape)
    if ood is not None:  # the run's own subset size, seed and conversion to its image shape
        run_ood = config.data.options.get("ood", {})
        convert = {k: run_ood[k] for k in ("grayscale", "size", "limit", "seed") if k in run_ood}
        attach_ood(problem, {"name": "npz", "path": str(ood), **convert}, meta["seed"])
    return problem


def _inputs_text(meta: dict[str, Any]) -> str:
    return meta.get("inputs") or "as the inputs hydraplus.distil was trained on"


def _distil_run(folder: Path) -> Run:
    result = load_distilled(folder)
    meta = read_meta(folder)
    methods: dict[str, str | None] = {"teacher": None, result.spec.name: result.spec.method}

    def suite(data: Path | None, ood: Path | None, shifts: bool) -> Suite:
        return held_out_suite(folder, meta, result, data, ood)

    return Run(folder, DISTIL, result.task, meta["seed"], result.models(), methods, result.precision,
               list(meta["input_shape"]), _inputs_text(meta), meta.get("normalization"), suite,
               pt2_only=("teacher",))


def held_out_suite(folder: Path, meta: dict[str, Any], result: Distilled, data: Path | None,
                   ood: Path | None) -> HeldOutSuite:
    """A distil run's test data ``data`` (``x_test``/``y_test`` of an ``.npz``, else all it holds) and
    OOD inputs, normalised as in training."""
    if data is None:
        raise ValueError(f"{folder} is a distil run: pass --data FILE, its test data (.npz or image folder)")
    found = npz_test_split(data) if data.suffix == ".npz" and data.is_file() else None
    x, y = found if found is not None else as_tensors(data, "test")
    if list(x.shape[1:]) != meta["input_shape"]:
        raise ValueError(f"--data: {data} holds inputs of shape {list(x.shape[1:])}, but the run's student "
                         f"takes {meta['input_shape']}")
    x_ood = None if ood is None else ood_inputs(ood)
    norm = meta.get("normalization")
    if norm is not None:
        x = normalize(x, norm["mean"], norm["std"], "test")
        x_ood = None if x_ood is None else normalize(x_ood, norm["mean"], norm["std"], "ood")
    record: dict[str, Any] = {"run": str(folder),
                              "test data": f"{data} (x_test/y_test)" if found is not None else str(data),
                              "ood data": None if ood is None else str(ood), "inputs": _inputs_text(meta),
                              "normalization": norm}
    if (spread := spread_scale_text(meta)) is not None:
        record["spread scale"] = spread
    if result.teacher is None:
        record["teacher"] = ("not evaluated: torch.export could not export it when distilled "
                             f"({meta.get('teacher_not_exported')}); the student is evaluated alone")
    y = read_targets(y, "test", 0, result.task)[1]
    return HeldOutSuite(x, y, result.task, x_ood, data.name, None if ood is None else ood.name, record)


def export_example(run: Run) -> torch.Tensor:
    """Two seeded random inputs of the run's input shape: what an export traces and checks."""
    return torch.randn(2, *run.input_shape, generator=torch.Generator().manual_seed(0))
