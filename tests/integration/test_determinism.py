"""Training is reproducible: same config and seed give bit-identical weights, another seed does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.config import parse_config
from hydraplus.io import safe_load
from hydraplus.pipeline.config_run import TrainedModels, run_experiment

# M = 3 heads get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")


def small_config() -> dict[str, Any]:
    """toy-spiral, 5 epochs, N = 3 members and one Hydra+ student with 3 heads."""
    return toy_config(epochs=5, members=3)


def states(models: TrainedModels) -> dict[str, dict[str, torch.Tensor]]:
    return {name: model.state_dict() for name, model in models.all().items()}


def assert_identical(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    folder = tmp_path_factory.mktemp("run") / "a"
    _, models = run_experiment(small_config(), folder, seed=0, progress=False)
    assert set(models.students) == {"hydra+-3"}
    return folder, states(models)


def test_same_seed_gives_identical_weights(
    first_run: tuple[Path, dict[str, dict[str, torch.Tensor]]], tmp_path: Path
) -> None:
    folder_a, state_a = first_run
    _, models = run_experiment(small_config(), tmp_path / "b", seed=0, progress=False)
    state_b = states(models)
    assert_identical(state_a, state_b)
    # The saved weights are what was trained.
    for name in ("ensemble", "hydra+-3"):
        assert_identical({name: safe_load(folder_a / name / "model.pt")}, {name: state_b[name]})


def test_different_seed_gives_different_weights(
    first_run: tuple[Path, dict[str, dict[str, torch.Tensor]]], tmp_path: Path
) -> None:
    _, state_a = first_run
    _, models = run_experiment(small_config(), tmp_path / "c", seed=1, progress=False)
    state_c = states(models)
    for name in state_a:
        assert any(not torch.equal(state_a[name][k], state_c[name][k]) for k in state_a[name]), name


def test_training_changed_the_weights(first_run: tuple[Path, dict[str, dict[str, torch.Tensor]]]) -> None:
    """Guard against a vacuous pass: trained weights differ from a fresh, same-seed initialisation."""
    from hydraplus.pipeline.builders import build_ensemble
    from hydraplus.pipeline.train import derived_seed

    _, state_a = first_run
    torch.manual_seed(derived_seed(0, "ensemble"))
    fresh = build_ensemble(parse_config(small_config())).state_dict()
    assert any(not torch.equal(fresh[k], state_a["ensemble"][k]) for k in fresh)
