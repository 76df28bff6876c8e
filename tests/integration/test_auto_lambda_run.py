"""An automatic lambda brings the student's off-data epistemic uncertainty toward the ensemble's,
is saved with the run, and resumes exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.data.probe import off_data_probe
from hydraplus.engine.auto_lambda import teacher_probe, typical_epistemic
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.experiments.runner import derived_seed, run_experiment

AUTO = [{"method": "hydra+", "heads": 5, "lambda": "auto"}]


def test_the_chosen_lambda_matches_the_ensembles_off_data_uncertainty(tmp_path: Path) -> None:
    """The paper's 200 epochs, N = M = 5: the student starts thousands of times as uncertain as
    the ensemble on the probe set and ends within 10% of it (typical, i.e. geometric-mean,
    epistemic uncertainty); lambda fell from its start on the way. (Shorter runs end farther
    off: once cosine annealing has brought the learning rate down, lambda moves the weights little.)"""
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
    ratios = [float(row["train/probe_epistemic_log_ratio"]) for row in rows
              if row.get("train/probe_epistemic_log_ratio")]
    assert ratios[0] > 4.0  # far too uncertain at first
    assert abs(student - probe.target) <= 0.10 * probe.target
    assert min(float(row["train/lambda"]) for row in rows) < saved["start"] / 4


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
