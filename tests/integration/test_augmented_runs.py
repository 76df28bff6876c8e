"""Augmented runs: repeatable, cached teacher outputs only for unaugmented students, and exact
resumption (the augmented training steps themselves: tests/engine/test_augment_training.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import image_config, image_problem
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.pipeline.config_run import run_experiment


def augmented_config() -> dict[str, Any]:
    """Tiny LeNet, 2 epochs, N = 2; the ensemble with the default augmentation, the students
    with a 2-pixel crop, except Drop (not augmented)."""
    return image_config(epochs=2, name="tiny-augmented", ensemble={"augment": True},
                        student={"augment": {"crop_padding": 2}},
                        students=[{"method": "hydra+", "heads": 2}, {"method": "drop", "augment": False}])


def test_augmented_runs_are_repeatable_and_cache_only_for_unaugmented_students(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hydraplus.pipeline.config_run.load_problem", lambda *a, **k: image_problem())
    weights = []
    for run in ("a", "b"):
        _, models = run_experiment(augmented_config(), tmp_path / run, seed=3, progress=False)
        weights.append({name: model.state_dict() for name, model in models.all().items()})
    for name, state in weights[0].items():
        for key, value in state.items():
            torch.testing.assert_close(weights[1][name][key], value, rtol=0, atol=0)
    assert list((tmp_path / "a" / "cache").glob("teacher-*.npy"))  # drop is not augmented
    config = augmented_config()
    config["students"] = [{"method": "hydra+", "heads": 2}]
    run_experiment(config, tmp_path / "c", seed=3, progress=False)
    assert not (tmp_path / "c" / "cache").exists()


@pytest.mark.parametrize("extra", [{}, {"augment": False, "mixup": 0.4, "core_init": "member"}],
                         ids=["crop", "mixup-from-member"])
def test_an_interrupted_augmented_run_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      extra: dict[str, Any]) -> None:
    monkeypatch.setattr("hydraplus.pipeline.config_run.load_problem", lambda *a, **k: image_problem())
    config = augmented_config()
    config["ensemble"]["epochs"] = config["student"]["epochs"] = 3
    config["students"] = [{"method": "hydra+", "heads": 2, **extra}]
    _, reference = run_experiment(config, tmp_path / "reference", seed=3, progress=False)

    start = AtomicCheckpoint.on_train_epoch_start

    def interrupt(self: AtomicCheckpoint, trainer: Any, module: Any) -> None:
        start(self, trainer, module)  # publishes the checkpoint of epoch 2
        if self.path.parent.name == "hydra+-2" and trainer.current_epoch == 2:
            raise RuntimeError("interrupted")

    with monkeypatch.context() as patch:
        patch.setattr(AtomicCheckpoint, "on_train_epoch_start", interrupt)
        with pytest.raises(RuntimeError, match="interrupted"):
            run_experiment(config, tmp_path / "run", seed=3, progress=False)
    assert torch.load(tmp_path / "run" / "hydra+-2" / "last.ckpt", weights_only=True)["epoch"] == 1
    _, resumed = run_experiment(config, tmp_path / "run", seed=3, progress=False, resume=True)
    expected = reference.students["hydra+-2"].state_dict()
    for key, value in resumed.students["hydra+-2"].state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
