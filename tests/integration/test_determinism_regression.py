"""Two runs with the same seed give identical weights, metrics and logs, on both toy problems
(stochastic students included), and the run folder records the seed and the config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_resume import outcome  # same package folder: the one weights/metrics/log snapshot

from _dummies import toy_config
from hydraplus.pipeline.config_run import run_experiment

# M = 3 heads get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")

SEED = 5


def small_config(name: str) -> dict[str, Any]:
    """The toy config, 8 epochs, N = 3, a 3-head Hydra+ and a stochastic (Gauss) student."""
    return toy_config(name, epochs=8, members=3, batch_size=64,
                      students=[{"method": "hydra+", "heads": 3}, {"method": "gauss"}])


def run(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Weights, test/probe metrics (fixed sampling seed) and training logs of every model."""
    problem, models = run_experiment(config, folder, seed=SEED, progress=False)
    return outcome(folder, problem, models)


@pytest.mark.parametrize("name", ["toy-regression", "toy-spiral"])
def test_same_seed_gives_identical_weights_metrics_and_logs(name: str, tmp_path: Path) -> None:
    config = small_config(name)
    first, second = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert first.keys() == second.keys() == {"ensemble", "hydra+-3", "gauss"}
    for model in first:
        a, b = first[model], second[model]
        assert a["state"].keys() == b["state"].keys()
        for key in a["state"]:
            assert torch.equal(a["state"][key], b["state"][key]), f"{model}.{key} differs"
        assert a["metrics"] == b["metrics"], model
        leaves = [v for group in a["metrics"].values() for v in (group.values() if isinstance(group, dict)
                                                                 else [group])]  # each group's numbers
        assert leaves and all(isinstance(v, int | float) and v == v for v in leaves), model
        assert a["log"] == b["log"], model
        assert len(a["log"].splitlines()) == 1 + 8, model


def test_run_folder_records_seed_and_config(tmp_path: Path) -> None:
    config = small_config("toy-regression")
    config["students"] = []
    run_experiment(config, tmp_path / "run", seed=SEED, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["seed"] == SEED
    assert saved["config"] == config
    assert {"hydraplus", "torch", "python"} <= set(saved["versions"])
