"""Early stopping on the validation KL to the teacher: the measure, the stop and the restored epoch."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from _dummies import toy_config
from hydraplus.core.divergence import predictive_kl
from hydraplus.core.fidelity import fidelity
from hydraplus.core.predict import predict
from hydraplus.engine.early_stopping import MONITOR, EarlyStopping
from hydraplus.pipeline.config_run import load_trained, run_experiment

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")


def test_classification_kl_is_the_fidelity_kl_and_zero_for_the_teacher_itself() -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(20, 3, 4, generator=g), torch.randn(20, 5, 4, generator=g)
    expected = fidelity(student, teacher)["kl"]
    assert predictive_kl(student, teacher, "classification") == pytest.approx(expected)
    assert predictive_kl(teacher, teacher, "classification") == pytest.approx(0.0, abs=1e-12)


def test_regression_kl_of_moment_matched_gaussians_by_hand() -> None:
    # teacher: two members N(0, 1) and N(2, 1) -> N(1, 2); student: one head N(1, e^0 = 1)
    teacher = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    student = torch.tensor([[[1.0, 0.0]]])
    expected = 0.5 * (math.log(1 / 2) + 2 / 1 - 1)  # KL(N(1, 2) || N(1, 1))
    assert predictive_kl(student, teacher, "regression") == pytest.approx(expected)


def test_non_finite_outputs_never_improve() -> None:
    teacher = torch.zeros(4, 2, 3)
    assert predictive_kl(torch.full((4, 1, 3), math.nan), teacher, "classification") == math.inf


def test_bad_settings_are_refused() -> None:
    x, outputs = torch.zeros(4, 2), torch.zeros(4, 3, 2)
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        EarlyStopping(x, outputs, "classification", 0)
    with pytest.raises(ValueError, match="4 validation inputs but 3 teacher outputs"):
        EarlyStopping(x, outputs[:3], "classification", 2)


def test_the_best_epoch_is_restored_and_recorded(tmp_path: Path) -> None:
    """Drop stops 3 epochs after its lowest validation KL; its saved weights are that epoch's: their
    KL is the lowest one logged, and the log ends with the stopping epoch."""
    config = toy_config(epochs=30, members=3, batch_size=64, students=[{"method": "drop"}])
    config["student"].update(epochs=60, patience=3)
    problem, models = run_experiment(config, tmp_path / "run", seed=3, progress=False)
    record = models.early_stopping["drop"]
    assert record["stopped_early"] and record["epochs_run"] == record["best_epoch"] + 3 < 60
    with (tmp_path / "run" / "drop" / "log" / "metrics.csv").open() as f:
        logged = [float(row[MONITOR]) for row in csv.DictReader(f)]
    assert len(logged) == record["epochs_run"]
    assert min(logged) == logged[record["best_epoch"] - 1] == pytest.approx(record["best_value"], rel=1e-12)
    teacher = predict(models.ensemble, problem.x_val)
    measured = EarlyStopping(problem.x_val, teacher, "classification", 3).measure(models.students["drop"])
    assert measured == pytest.approx(record["best_value"], rel=1e-9)
    _, _, loaded = load_trained(tmp_path / "run")  # model.pt holds the best epoch, its record beside it
    assert loaded.early_stopping["drop"] == record
    for key, value in loaded.students["drop"].state_dict().items():
        torch.testing.assert_close(value, models.students["drop"].state_dict()[key], rtol=0, atol=0)


def test_without_patience_every_epoch_is_trained(tmp_path: Path) -> None:
    config = toy_config(epochs=3, members=2, batch_size=64, students=[{"method": "drop"}])
    _, models = run_experiment(config, tmp_path / "run", seed=0, progress=False)
    assert models.early_stopping == {}
    assert not (tmp_path / "run" / "drop" / "early_stopping.json").exists()
    header = (tmp_path / "run" / "drop" / "log" / "metrics.csv").read_text().splitlines()[0]
    assert MONITOR not in header
