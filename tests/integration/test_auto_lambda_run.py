"""An automatic lambda brings the student's off-data epistemic uncertainty toward the ensemble's,
is saved with the run, and resumes exactly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.data.probe import off_data_probe
from hydraplus.engine.auto_lambda import teacher_probe, typical_epistemic
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.pipeline.config_run import run_experiment
from hydraplus.pipeline.train import derived_seed

AUTO = [{"method": "hydra+", "heads": 5, "lambda": "auto"}]


def test_the_chosen_lambda_starts_after_a_warm_up_at_zero_and_keeps_the_fit(tmp_path: Path) -> None:
    """The paper's 200 epochs, N = M = 5: lambda is 0 for the first 20 epochs; the lambda = 0 student
    is then more uncertain than the ensemble on the probe set, so lambda stays 0 at first; later,
    when its uncertainty has fallen below the ensemble's, lambda rises from its floor, and the guard
    cuts it as soon as the fit to the teacher on the training inputs gets worse than the best so far.
    The student keeps the teacher's classes on every training input and ends within a factor of
    e^1.5 of the ensemble's typical (geometric-mean) epistemic uncertainty (measured: 2.7 times
    below it; the controller before the guard ended within 10%, with the paper's lambda held through
    the first epochs)."""
    problem, models = run_experiment(toy_config(epochs=200, members=5, students=AUTO), tmp_path, seed=0,
                                     progress=False)
    saved = json.loads((tmp_path / "hydra+-5-auto" / "auto_lambda.json").read_text())
    assert saved["start"] == 9.0  # the config's lambda for M = 5
    probe = teacher_probe(models.ensemble, off_data_probe(problem.x_train, seed=derived_seed(0, "probe")),
                          "classification")
    assert saved["target_epistemic"] == pytest.approx(probe.target)
    student = typical_epistemic(models.students["hydra+-5-auto"], probe, "classification")
    with (tmp_path / "hydra+-5-auto" / "log" / "metrics.csv").open() as log:
        rows = list(csv.DictReader(log))
    assert all(float(row["train/lambda"]) == 0.0 for row in rows[:20])  # the warm-up
    ratios = [float(row["train/probe_epistemic_log_ratio"]) for row in rows
              if row.get("train/probe_epistemic_log_ratio")]
    assert ratios[0] > 0.0 and float(rows[20]["train/lambda"]) == 0.0  # already uncertain enough
    assert max(float(row["train/lambda"]) for row in rows) > 0.0  # rose later
    assert float(rows[-1]["train/guard_agreement"]) == 1.0
    assert float(rows[-1]["train/guard_kl"]) < 1e-3
    assert abs(math.log(student / probe.target)) < 1.5


def test_an_interrupted_auto_lambda_run_resumes_exactly(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = toy_config(epochs=6, members=3, students=[{"method": "hydra+", "heads": 3, "lambda": "auto"}])
    _, reference = run_experiment(config, tmp_path / "reference", seed=1, progress=False)
    start = AtomicCheckpoint.on_train_epoch_start

    def interrupt(self: AtomicCheckpoint, trainer: Any, module: Any) -> None:
        start(self, trainer, module)
        if self.path.parent.name == "hydra+-3-auto" and trainer.current_epoch == 4:
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
