"""Resuming into a run folder started with another config or seed is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from _dummies import toy_config
from hydraplus.pipeline.config_run import run_experiment


def tiny_config() -> dict:
    return toy_config(epochs=1, members=2, students=[{"method": "hydra", "heads": 2}])


def test_resume_with_another_seed_is_refused(tmp_path: Path) -> None:
    run_experiment(tiny_config(), tmp_path, seed=1, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*: its saved seed do not match"):
        run_experiment(tiny_config(), tmp_path, seed=2, progress=False, resume=True)


def test_resume_with_another_config_is_refused(tmp_path: Path) -> None:
    run_experiment(tiny_config(), tmp_path, seed=1, progress=False)
    changed = tiny_config()
    changed["student"]["lr"] = 0.5
    with pytest.raises(ValueError, match=r"cannot resume .*: its saved config do not match"):
        run_experiment(changed, tmp_path, seed=1, progress=False, resume=True)


def test_resume_of_the_same_run_is_accepted(tmp_path: Path) -> None:
    run_experiment(tiny_config(), tmp_path, seed=1, progress=False)
    _, models = run_experiment(tiny_config(), tmp_path, seed=1, progress=False, resume=True)
    assert set(models.all()) == {"ensemble", "hydra-2"}
