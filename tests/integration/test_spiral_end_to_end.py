"""The paper's toy claim, end to end: Hydra+ keeps the ensemble's off-data epistemic uncertainty.

Paper settings (N = 20, 200 epochs, toy-spiral), students Hydra+-20 and Hydra-20, seed 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hydraplus.config import read_config
from hydraplus.core.predict import predict
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.data.toy import ToyProblem
from hydraplus.pipeline.config_run import TrainedModels, run_experiment

FAR = 5.0  # grid points farther than this (Euclidean) from every training point are "off the data"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ToyProblem, TrainedModels]:
    config: dict[str, Any] = read_config("toy-spiral")
    assert config["ensemble"]["members"] == 20 and config["student"]["epochs"] == 200
    config["students"] = [{"method": "hydra+", "heads": 20}, {"method": "hydra", "heads": 20}]
    run_dir: Path = tmp_path_factory.mktemp("spiral")
    return run_experiment(config, run_dir, seed=1, progress=False)


@pytest.fixture(scope="module")
def off_data_epistemic(trained: tuple[ToyProblem, TrainedModels]) -> dict[str, float]:
    problem, models = trained
    grid = problem.x_probe
    far = torch.cdist(grid, problem.x_train).min(dim=1).values > FAR
    assert far.sum().item() > 1000  # most of the [-20, 20]^2 grid is off the data
    return {
        name: classification_uncertainty(predict(model, grid[far]))["epistemic"].mean().item()
        for name, model in models.all().items()
    }


def error_on_test_split(model: torch.nn.Module, problem: ToyProblem) -> float:
    """Error of the averaged prediction on the test split."""
    probs = predict(model, problem.x_test).softmax(-1).mean(1)
    return (probs.argmax(-1) != problem.y_test).float().mean().item()


def test_students_were_trained(trained: tuple[ToyProblem, TrainedModels]) -> None:
    _, models = trained
    assert set(models.students) == {"hydra+-20", "hydra-20"}
    assert models.specs["hydra+-20"].lam(0) == 4.0 and models.specs["hydra-20"].lam(0) == 0.0
    assert all(v == 0 for v in models.skipped_steps.values())


def test_hydra_plus_keeps_off_data_epistemic_uncertainty(off_data_epistemic: dict[str, float]) -> None:
    plus, hydra, ens = (off_data_epistemic[k] for k in ("hydra+-20", "hydra-20", "ensemble"))
    assert plus > 1.5 * hydra, off_data_epistemic
    # Hydra collapses to low epistemic uncertainty away from the data; the ensemble does not.
    assert ens > 2.0 * hydra, off_data_epistemic
    assert plus > 0.5 * ens, off_data_epistemic


def test_hydra_plus_is_as_accurate_as_the_ensemble(trained: tuple[ToyProblem, TrainedModels]) -> None:
    problem, models = trained
    ens_error = error_on_test_split(models.ensemble, problem)
    plus_error = error_on_test_split(models.students["hydra+-20"], problem)
    assert ens_error <= 0.05
    assert abs(plus_error - ens_error) <= 0.05, (plus_error, ens_error)
