"""Bad inputs at every boundary are refused with an error that names the problem.

One table: (description, call, exception type, message pattern). Each call gets a fresh
temporary folder; training calls fail in validation, before any epoch runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from _dummies import toy_config
from hydraplus.config import ConfigError, StudentSpec, load_config, parse_config, with_members
from hydraplus.core.checks import check_output_dir_writable
from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.losses import LossWeights, aggregation_loss, combine, individuality_loss
from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics
from hydraplus.core.predict import predict
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.stochastic import DirichletStudent
from hydraplus.data.toy import ToyProblem, make_regression, make_spiral
from hydraplus.engine.data import TensorBatches, seeded_loader
from hydraplus.pipeline.config_run import run_experiment, train_student
from hydraplus.pipeline.train import train_ensemble


def config(students: list[dict[str, Any]] | None = None, **arch: list[int]) -> dict[str, Any]:
    """toy-spiral for 1 epoch, N = 2; ``arch`` overrides layer sizes (member=, core=, head=)."""
    cfg = toy_config(epochs=1, members=2, students=students)
    for part, sizes in arch.items():
        cfg["arch"][part] = {"sizes": sizes}
    return cfg


def student_spec(cfg: dict[str, Any], entry: dict[str, Any]) -> StudentSpec:
    """The resolved settings of ``entry`` as a student of ``cfg``."""
    return parse_config({**cfg, "students": [entry]}).students[0]


def spiral(**changes: Any) -> ToyProblem:
    return dataclasses.replace(make_spiral(0), **changes)


def with_value(t: torch.Tensor, index: tuple[int, ...], value: float) -> torch.Tensor:
    out = t.clone()
    out[index] = value
    return out


def ensemble_on(problem: ToyProblem, cfg: dict[str, Any] | None = None) -> Callable[[Path], Any]:
    return lambda tmp: train_ensemble(parse_config(cfg or config()), problem, tmp, 0, progress=False)


def student_on(problem: ToyProblem, teacher: torch.Tensor, cfg: dict[str, Any] | None = None
               ) -> Callable[[Path], Any]:
    parsed = parse_config(cfg or config())
    return lambda tmp: train_student(parsed, parsed.students[0], problem, teacher, tmp, 0, progress=False)


X, Y = make_spiral(0).x_train, make_spiral(0).y_train
TEACHER = torch.zeros(len(X), 2, 3)
LINEAR = nn.Linear(2, 3)


def bad_json(tmp: Path) -> None:
    path = tmp / "broken.json"
    path.write_text('{"name": "x", "task": ')
    load_config(path)


def write_under_a_file(tmp: Path) -> None:
    (tmp / "file.txt").write_text("a regular file, not a folder")
    run_experiment(config(), tmp / "file.txt" / "run", progress=False)


CASES: list[tuple[str, Callable[[Path], Any], type[BaseException], str]] = [
    # data values
    ("NaN in inputs", ensemble_on(spiral(x_train=with_value(X, (3, 1), float("nan")))),
     ValueError,
     r"train inputs must be finite, but contains 1 NaN and 0 infinite values \(first at index \[3, 1\]\)"),
    ("inf in inputs to predict", lambda tmp: predict(LINEAR, with_value(X, (0, 0), float("inf"))),
     ValueError, r"inputs to predict must be finite, but contains 0 NaN and 1 infinite"),
    ("NaN in teacher outputs", student_on(spiral(), with_value(TEACHER, (0, 1, 2), float("nan"))),
     ValueError, r"teacher outputs must be finite, but contains 1 NaN"),
    ("inf in dataset tensor", lambda tmp: seeded_loader((with_value(X, (1, 1), -float("inf")), Y), 8, 0,
                                                        names=("x", "y")),
     ValueError, r"x must be finite, but contains 0 NaN and 1 infinite"),
    ("NaN logits in metrics", lambda tmp: ClassificationMetrics(3).update(
        with_value(torch.zeros(4, 2, 3), (0, 0, 0), float("nan")), torch.zeros(4, dtype=torch.long)),
     ValueError, r"logits must be finite"),
    ("NaN regression target", lambda tmp: RegressionMetrics().update(
        torch.zeros(4, 2, 2), torch.tensor([0.0, float("nan"), 0.0, 0.0])),
     ValueError, r"targets must be finite"),
    # shapes and dtypes
    ("labels with an extra dimension", ensemble_on(spiral(y_train=Y.unsqueeze(1))),
     ValueError, r"train targets must have shape \[\*\], got \[240, 1\]"),
    ("inputs with the wrong feature count", ensemble_on(spiral(x_train=torch.randn(240, 3))),
     ValueError, r"the ensemble cannot take inputs of shape \[3\]"),
    ("teacher outputs not [B, N, D]", student_on(spiral(), torch.zeros(len(X), 3)),
     ValueError, r"teacher outputs must have shape \[240, \*, \*\], got \[240, 3\]"),
    ("inputs and targets differ in length", ensemble_on(spiral(y_train=Y[:-1])),
     ValueError, r"train inputs and targets must match in number, got 240 and 239"),
    ("float labels", ensemble_on(spiral(y_train=Y.float())),
     TypeError, r"train targets must be an integer tensor \(class labels\), got dtype torch.float32"),
    ("integer inputs", ensemble_on(spiral(x_train=X.long())),
     TypeError, r"train inputs must be a floating-point tensor, got dtype torch.int64"),
    ("float regression targets required", lambda tmp: train_ensemble(
        parse_config(toy_config("toy-regression", epochs=1, members=20, students=[])),
        dataclasses.replace(make_regression(0), y_train=torch.zeros(240, dtype=torch.long)), tmp, 0,
        progress=False),
     TypeError, r"train targets must be a floating-point tensor, got dtype torch.int64"),
    # labels and class counts
    ("label above the class range", ensemble_on(spiral(y_train=with_value(Y, (0,), 3))),
     ValueError, r"train targets must be class labels in \[0, 2\] \(3 classes\), found \[3\]"),
    ("negative label in metrics", lambda tmp: ClassificationMetrics(3).update(
        torch.zeros(2, 2, 3), torch.tensor([0, -1])),
     ValueError, r"targets must be class labels in \[0, 2\] \(3 classes\), found \[-1\]"),
    ("teacher has more outputs than classes", ensemble_on(spiral(), config(member=[2, 16, 4])),
     ValueError, r"teacher outputs 4 values per example but the data has 3 classes"),
    ("cached teacher outputs of another class count", student_on(spiral(), torch.zeros(len(X), 2, 4)),
     ValueError, r"teacher outputs 4 values per example but the data has 3 classes"),
    ("student has fewer outputs than classes", student_on(spiral(), TEACHER, config(head=[100, 2])),
     ValueError, r"student outputs 2 values per example but the data has 3 classes"),
    # emptiness
    ("empty dataset", ensemble_on(spiral(x_train=X[:0], y_train=Y[:0])),
     ValueError, r"train inputs must have at least one example, got shape \[0, 2\]"),
    ("empty TensorBatches", lambda tmp: TensorBatches(X[:0], names=("x",)),
     ValueError, r"x must have at least one example"),
    ("predict on nothing", lambda tmp: predict(LINEAR, X[:0]),
     ValueError, r"cannot predict on an empty input"),
    # sizes and hyper-parameters
    ("M < 1 heads", lambda tmp: MultiHeadStudent.from_factories(nn.Identity, lambda: nn.Linear(2, 3), 0),
     ValueError, r"number of heads M must be >= 1, got 0"),
    ("M < 1 in a student entry", lambda tmp: student_spec(config(), {"method": "hydra+", "heads": 0}),
     ConfigError, r"students\[0\] \(hydra\+\)\.heads must be >= 1, got 0"),
    ("N < 1 members", lambda tmp: Ensemble.from_factory(lambda: nn.Linear(2, 3), 0),
     ValueError, r"ensemble size N must be >= 1, got 0"),
    ("N < 1 in a config", lambda tmp: parse_config(with_members(config(), 0)),
     ConfigError, r"ensemble\.members must be >= 1, got 0"),
    ("negative lambda", lambda tmp: LambdaSchedule(-0.5), ValueError, r"lambda must be >= 0, got -0.5"),
    ("negative lambda in combine", lambda tmp: combine(
        {"aggregation": torch.zeros(()), "individuality": torch.zeros(()), "correctness": torch.zeros(())},
        LossWeights(), lam=-1.0, wd=0.0),
     ValueError, r"lambda \(diversity weight\) must be >= 0, got -1.0"),
    ("zero temperature", lambda tmp: LossWeights(t_mean=0.0),
     ValueError, r"t_mean \(temperature\) must be > 0, got 0.0"),
    ("negative temperature", lambda tmp: LossWeights(t_ind=-1.0),
     ValueError, r"t_ind \(temperature\) must be > 0, got -1.0"),
    ("zero temperature in L2", lambda tmp: aggregation_loss(TEACHER[:4], TEACHER[:4], temperature=0.0),
     ValueError, r"temperature must be > 0, got 0.0"),
    ("negative temperature in L3", lambda tmp: individuality_loss(TEACHER[:4], TEACHER[:4], -2.0),
     ValueError, r"temperature must be > 0, got -2.0"),
    ("zero EnDD temperature", lambda tmp: DirichletStudent(nn.Identity(), nn.Linear(2, 3), 2, 0.0),
     ValueError, r"temperature must be > 0, got 0.0"),
    ("alpha above 1", lambda tmp: LossWeights(alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
    ("beta below 0", lambda tmp: LossWeights(beta=-0.1), ValueError, r"beta must be in \[0, 1\], got -0.1"),
    ("alpha outside [0, 1] in a student entry",
     lambda tmp: student_spec(config(), {"method": "hydra+", "alpha": 2.0}),
     ConfigError, r"students\[0\] \(hydra\+\): .*alpha must be in \[0, 1\], got 2.0"),
    # files, names and configs
    ("output folder under a regular file", write_under_a_file,
     PermissionError, r"output folder .*file\.txt/run is not writable \(Not a directory\)"),
    ("output folder in /proc", lambda tmp: check_output_dir_writable("/proc/hydraplus-run"),
     PermissionError, r"output folder /proc/hydraplus-run is not writable"),
    ("unknown method", lambda tmp: student_spec(config(), {"method": "hydra++"}),
     ConfigError, r"students\[0\]: unknown method 'hydra\+\+'"),
    ("unknown config name", lambda tmp: load_config("toy-spiralz"),
     ConfigError, r"unknown config 'toy-spiralz'"),
    ("bad config JSON", bad_json, ConfigError, r"config .*broken\.json is not valid JSON"),
]


@pytest.mark.parametrize(("description", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(description: str, call: Callable[[Path], Any],
                                                   error: type[BaseException], message: str,
                                                   tmp_path: Path) -> None:
    with pytest.raises(error, match=message):
        call(tmp_path)
