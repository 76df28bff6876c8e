"""An automatic lambda: the lambda = 0 run, then a diversity phase kept only when it helps; saved
with the run, and resumed exactly."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import hydraplus
from _dummies import toy_config
from hydraplus.data.probe import off_data_probe
from hydraplus.engine.auto_lambda import AutoLambda, Candidate, Selection, off_data, rise_limit, teacher_probe
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.pipeline.config_run import run_experiment
from hydraplus.pipeline.train import derived_seed

AUTO = [{"method": "hydra+", "heads": 5, "lambda": "auto"}]


def test_the_run_is_the_lambda_0_run_then_a_diversity_phase_that_keeps_the_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's 200 epochs, N = M = 5: lambda is 0 for all 200 (the lambda = 0 run); that student
    is less uncertain than the ensemble on the probe set, so 60 diversity epochs follow (the learning
    rate restarting from the full rate), lambda rising from a thousandth of the config's 9 to 9 with
    the teacher's class kept on every training input. Measured: no diversity epoch matched the
    ensemble's probe histogram better on the whole probe and both halves (the best, epoch 208, tied
    the lambda = 0 student's TV of 0.096), so the run ends with the lambda = 0 student."""
    chosen: list[tuple[Candidate, Candidate]] = []
    pick = Selection.chosen

    def spy(self: Selection) -> Any:
        result = pick(self)
        chosen.append((self.reference[0], result[0]))  # type: ignore[index]
        return result

    monkeypatch.setattr(Selection, "chosen", spy)
    problem, models = run_experiment(toy_config(epochs=200, members=5, students=AUTO), tmp_path, seed=0,
                                     progress=False)
    saved = json.loads((tmp_path / "hydra+-5-auto" / "auto_lambda.json").read_text())
    assert saved["start"] == 9.0  # the config's lambda for M = 5
    probe = teacher_probe(models.ensemble, off_data_probe(problem.x_train, seed=derived_seed(0, "probe")),
                          "classification")
    assert saved["target_epistemic"] == pytest.approx(probe.target)
    assert (saved["diversity_phase"], saved["diversity_epochs"], saved["reference_epoch"],
            saved["chosen_epoch"], saved["chosen"]) == (True, 60, 200, 200, "lambda = 0 student")
    assert saved["probe_tv"]["chosen"] == saved["probe_tv"]["reference"]
    with (tmp_path / "hydra+-5-auto" / "log" / "metrics.csv").open() as log:
        rows = list(csv.DictReader(log))
    assert len(rows) == 260 and all(float(row["train/lambda"]) == 0.0 for row in rows[:200])
    lambdas = [float(row["train/lambda"]) for row in rows[200:]]
    assert lambdas[0] == pytest.approx(9.0 * 1e-3)
    assert float(rows[200]["train/probe_epistemic_log_ratio"]) < -0.5  # the lambda = 0 student: below
    assert all(float(row["train/probe_epistemic_log_ratio"]) < 0 for row in rows[200:])
    assert all(float(row["train/guard_agreement"]) == 1.0 for row in rows[200:])  # never cut
    # below the target on every epoch, so lambda rises every epoch, by at most the rise limit,
    # and never past the config's 9 (how fast depends on the CPU's float rounding: 5.0 to 9.0 measured)
    steps = [after / before for before, after in itertools.pairwise(lambdas)]
    assert all(1.0 < step <= rise_limit(200) * (1 + 1e-9) for step in steps)
    assert lambdas[-1] <= 9.0 * (1 + 1e-9) and lambdas[-1] > 100 * lambdas[0]
    def cosine(step: float) -> float:  # the column holds the rate for the next epoch
        return 0.5 * (1 + math.cos(math.pi * step))

    lr = float(rows[0]["train/lr"]) / cosine(1 / 200)
    assert float(rows[199]["train/lr"]) == pytest.approx(0.0, abs=1e-12)  # the first schedule's end
    for row in (200, 230, 258):  # the phase's own cosine: a warm restart
        assert float(rows[row]["train/lr"]) == pytest.approx(lr * cosine((row - 199) / 60))
    (reference, final), *_ = chosen
    assert reference.epoch == 200 and final is reference
    measured = off_data(models.students["hydra+-5-auto"], probe, "classification")
    assert measured.tv == pytest.approx(reference.tv)
    assert measured.tv_halves == pytest.approx(reference.tv_halves)


def test_a_run_that_needs_no_diversity_is_the_lambda_0_run_bit_for_bit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the lambda = 0 student as uncertain as the ensemble, an automatic run ends as the lambda = 0
    run ends (early stopping included), with the same weights to the bit."""
    torch.manual_seed(0)
    x = torch.randn(120, 2)
    y = (x[:, 0] > 0).long()
    members = [nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)) for _ in range(3)]
    monkeypatch.setattr(AutoLambda, "start", lambda self, measured, fit=None: 0.0)  # "enough already"
    results = [hydraplus.distil(members, (x, y), heads=2, epochs=8, lam=lam, seed=3, batch_size=32,
                                patience=2, progress=False) for lam in (0.0, "auto")]
    assert results[0].early_stopping == results[1].early_stopping
    zero = results[0].model.state_dict()
    for key, value in results[1].model.state_dict().items():
        assert torch.equal(value, zero[key]), key


@pytest.mark.parametrize("epoch", [4, 7])  # in the lambda = 0 phase, in the diversity phase
def test_an_interrupted_auto_lambda_run_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      epoch: int) -> None:
    config = toy_config(epochs=6, members=3, students=[{"method": "hydra+", "heads": 3, "lambda": "auto"}])
    _, reference = run_experiment(config, tmp_path / "reference", seed=1, progress=False)
    start = AtomicCheckpoint.on_train_epoch_start

    def interrupt(self: AtomicCheckpoint, trainer: Any, module: Any) -> None:
        start(self, trainer, module)
        if self.path.parent.name == "hydra+-3-auto" and trainer.current_epoch == epoch:
            raise RuntimeError("interrupted")

    with monkeypatch.context() as patch:
        patch.setattr(AtomicCheckpoint, "on_train_epoch_start", interrupt)
        with pytest.raises(RuntimeError, match="interrupted"):
            run_experiment(config, tmp_path / "run", seed=1, progress=False)
    _, resumed = run_experiment(config, tmp_path / "run", seed=1, progress=False, resume=True)
    expected = reference.students["hydra+-3-auto"].state_dict()
    for key, value in resumed.students["hydra+-3-auto"].state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    final = [json.loads((tmp_path / run / "hydra+-3-auto" / "auto_lambda.json").read_text())["final"]
             for run in ("reference", "run")]
    assert final[0] == final[1]
