"""The first line of a run: the models it trains and an estimate of how long that takes.

Each model's estimate is a few timed forward and backward passes on one batch
(`hydraplus.engine.progress.step_seconds`) times its steps per epoch times its epochs: the training
steps only (not the teacher's cached outputs, nor evaluation), at most (early stopping may end a
student sooner, and an automatic lambda's diversity phase, counted in, may not run). The timed
models are throw-away copies and the random state is restored, so training is the same with or
without it.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from hydraplus.config import ExperimentConfig, StudentSpec
from hydraplus.data.problem import Problem
from hydraplus.engine.auto_lambda import diversity_epochs
from hydraplus.engine.progress import PlannedModel, RunProgress, step_seconds, training_seconds
from hydraplus.pipeline.builders import build_ensemble, build_student


def _device(accelerator: str) -> str:
    return "cuda" if accelerator in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"


def _planned(label: str, model: nn.Module, x: torch.Tensor, examples: int, batch_size: int, epochs: int,
             world_size: int, device: str, precision: str, teacher: nn.Module | None = None,
             auto_lambda: bool = False) -> PlannedModel:
    batch = x[:max(batch_size // world_size, 1)]  # each process's share of a step
    step = step_seconds(model, batch, teacher=teacher, device=device, precision=precision)
    extra = diversity_epochs(epochs) if auto_lambda else 0
    seconds = training_seconds(step, examples, batch_size, epochs + extra)
    return PlannedModel(label, epochs + extra, seconds, extra)


def plan_run(config: ExperimentConfig, problem: Problem, batched: bool | None,
             accelerator: str) -> RunProgress:
    """The ensemble and every student of ``config`` on ``problem``, each with its estimate."""
    config = dataclasses.replace(config, compile=False)  # compiling would cost more than the steps
    device, world_size = _device(accelerator), config.trainer.world_size
    x, examples = problem.x_train, len(problem.x_train)
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
        ensemble = build_ensemble(config, batched)
        settings = config.ensemble
        models = [_planned(f"{problem.name}/ensemble-{ensemble.size}", ensemble, x, examples,
                           settings.batch_size, settings.epochs, world_size, device, config.precision)]
        ensemble.to(device)
        for spec in config.students:
            student = build_student(config, spec, batched)
            models.append(_planned(f"{problem.name}/{spec.name}", student, x, examples, spec.batch_size,
                                   spec.epochs, world_size, device, config.precision,
                                   teacher=ensemble if spec.augment is not None else None,
                                   auto_lambda=spec.lam.auto))
    return RunProgress(models)


def plan_distil(student: nn.Module, spec: StudentSpec, x: torch.Tensor, device: str | torch.device,
                world_size: int, precision: str) -> RunProgress:
    """The one student of `hydraplus.distil`, with its estimate."""
    return RunProgress([_planned(spec.name, student, x, len(x), spec.batch_size, spec.epochs, world_size,
                                 str(device), precision, auto_lambda=spec.lam.auto)])
