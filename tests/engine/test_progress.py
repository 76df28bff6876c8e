"""Training progress: the run's first line, a line per epoch in a log, Lightning's bar on a terminal."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import hydraplus
from _dummies import toy_config
from hydraplus.engine.auto_lambda import diversity_epochs
from hydraplus.engine.progress import (
    EpochLines,
    ModelBar,
    PlannedModel,
    RunProgress,
    duration,
    progress_callback,
    step_seconds,
)
from hydraplus.pipeline.config_run import run_experiment

pytestmark = pytest.mark.filterwarnings("ignore::hydraplus.config.ConfigWarning")

EPOCH_LINE = re.compile(r"^  (?P<label>\S+)  epoch (?P<done>\d+)/2  loss (?P<loss>\d+\.\d{4})  \d+\.\ds  "
                        r"left ~\S+ model, ~\S+ run$")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_durations_read_at_every_scale() -> None:
    assert [duration(s) for s in (42.04, 185, 3720)] == ["42.0s", "3m05s", "1h02m"]


def test_the_run_left_is_the_later_models_scaled_by_the_measured_epochs() -> None:
    stream = io.StringIO()
    run = RunProgress([PlannedModel("a", 2, 10.0), PlannedModel("b", 1, 20.0)], stream)
    run.announce()
    assert stream.getvalue() == ("hydraplus: training a (2 epochs), b (1 epoch); about 30.0s estimated "
                                 "(from a few timed training steps of each)\n")
    assert run.left_after("a") == 20.0
    run.record_epoch("a", 10.0)  # estimated 5 s an epoch, measured 10 s: the rest takes twice as long
    assert run.left_after("a") == 40.0 and run.left_after("b") == 0.0 and run.left_after("c") is None


def test_timing_steps_leaves_the_model_and_the_random_state_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    x, rng = torch.randn(16, 4), torch.get_rng_state()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert step_seconds(model, x) > 0
    assert torch.equal(torch.get_rng_state(), rng)  # dropout drew its numbers in a forked state
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch-norm statistics too
    assert all(p.grad is None for p in model.parameters())


def test_a_log_gets_a_first_line_then_one_line_per_epoch_per_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_experiment(toy_config(epochs=2, members=2), tmp_path / "run", progress=True)
    first, *lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"hydraplus: training spiral/ensemble-2 \(2 epochs\), spiral/hydra\+-2 \(2 epochs\); "
                        r"about \S+ estimated \(from a few timed training steps of each\)", first)
    matches = [EPOCH_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(m["label"], int(m["done"])) for m in matches] == [
        ("spiral/ensemble-2", 1), ("spiral/ensemble-2", 2), ("spiral/hydra+-2", 1), ("spiral/hydra+-2", 2)]
    for folder, m in zip(["ensemble", "ensemble", "hydra+-2", "hydra+-2"], matches, strict=True):
        with (tmp_path / "run" / folder / "log" / "metrics.csv").open() as f:
            logged = [float(row["train/loss"]) for row in csv.DictReader(f) if row["train/loss"]]
        assert float(m["loss"]) == pytest.approx(logged[int(m["done"]) - 1], abs=5e-5)


def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_experiment(toy_config(epochs=1, members=2), tmp_path / "run", progress=False)
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_lightnings_bar_with_rate_and_time_left(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert isinstance(progress_callback("m"), ModelBar)
    assert isinstance(progress_callback("m", None, io.StringIO()), EpochLines)
    run_experiment(toy_config(epochs=2, members=2), tmp_path / "run", progress=True)
    text = terminal.getvalue()
    assert text.startswith("hydraplus: training spiral/ensemble-2 (2 epochs)")
    bar = re.compile(r"spiral/hydra\+-2 epoch 2/2: 100%\S*\|[^|]*\| (\d+)/\1 \[\d\d:\d\d<00:00, [\d.]+it/s, "
                     r"model left=\S+, run left=\S+\]")
    assert bar.search(text), text[-400:]


def test_other_processes_print_nothing() -> None:
    stream = io.StringIO()
    lines = EpochLines("m", stream=stream)
    trainer = SimpleNamespace(is_global_zero=False, current_epoch=0, max_epochs=2)
    lines.on_train_start(trainer, None)
    lines.on_train_epoch_end(trainer, None)
    lines.on_train_end(trainer, None)
    assert stream.getvalue() == ""


def test_distil_says_its_student_and_estimate_first(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval() for _ in range(3)]
    x, y = torch.randn(40, 5), torch.arange(40) % 3
    hydraplus.distil(members, (x, y), epochs=2, batch_size=20, lam=0.1, patience=None, progress=True)
    first, *lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"hydraplus: distilling into hydra\+-3 \(2 epochs\); about \S+ estimated .*", first)
    planned = PlannedModel("hydra+-5-auto", 39, 1.0, extra=9)
    assert planned.describe() == "hydra+-5-auto (30 epochs + up to 9 for lambda)"
    assert [line.split("  ")[1:3] for line in lines if "epoch" in line] == [["hydra+-3", "epoch 1/2"],
                                                                             ["hydra+-3", "epoch 2/2"]]


def test_an_automatic_lambda_counts_its_diversity_phase_in_the_plan(
        capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval() for _ in range(3)]
    x, y = torch.randn(40, 5), torch.arange(40) % 3
    hydraplus.distil(members, (x, y), epochs=10, batch_size=20, lam="auto", patience=None, progress=True)
    first = capsys.readouterr().err.splitlines()[0]
    extra = diversity_epochs(10)
    assert first.startswith(
        f"hydraplus: distilling into hydra+-3-auto (10 epochs + up to {extra} for lambda);")
