"""An automatic lambda brings the student's off-data epistemic uncertainty to the ensemble's,
is saved with the run, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.data.probe import off_data_probe
from hydraplus.engine.auto_lambda import TOLERANCE, mean_epistemic
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.experiments.runner import derived_seed, run_experiment

AUTO = [{"method": "hydra+", "heads": 5, "lambda": "auto"}]


def test_the_chosen_lambda_matches_the_ensembles_off_data_uncertainty(tmp_path: Path) -> None:
    problem, models = run_experiment(toy_config(epochs=80, members=5, students=AUTO), tmp_path, seed=0,
                                     progress=False)
    saved = json.loads((tmp_path / "hydra+-5-auto" / "auto_lambda.json").read_text())
    assert saved["start"] == 9.0  # the config's lambda for M = 5
    probe = off_data_probe(problem.x_train, seed=derived_seed(0, "probe"))
    target = mean_epistemic(models.ensemble, probe, "classification")
    assert saved["target_epistemic"] == pytest.approx(target)
    student = mean_epistemic(models.students["hydra+-5-auto"], probe, "classification")
    assert abs(student - target) <= TOLERANCE * target
    log = (tmp_path / "hydra+-5-auto" / "log" / "metrics.csv").read_text()
    assert "train/lambda" in log and "train/probe_epistemic_log_ratio" in log


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
