"""The training path's pieces that need no training: a student's augmentation, seeded for the engine.

(Runs themselves: tests/integration/.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import hydraplus
from _dummies import TinyCNN, blob_images, image_config, image_problem, train_members
from hydraplus.config import ConfigError, StudentSpec, parse_config
from hydraplus.core.augment import Augmentation
from hydraplus.data.toy import make_spiral
from hydraplus.pipeline.train import seeded_augment


def augmented_config() -> dict[str, Any]:
    """The students share a 2-pixel crop (and the default flip)."""
    return image_config(epochs=2, student={"augment": {"crop_padding": 2}})


def spec(entry: dict[str, Any]) -> StudentSpec:
    """The resolved settings of one student entry of `augmented_config`."""
    return parse_config({**augmented_config(), "students": [entry]}).students[0]


def test_augmentation_changes_training() -> None:
    problem = image_problem()
    hydra = spec({"method": "hydra+", "heads": 2})
    assert hydra.augment == Augmentation(2, True)
    assert spec({"method": "drop", "augment": False}).augment is None
    aug = seeded_augment(hydra.augment, problem, seed=0)
    assert aug is not None and aug.fill == problem.normalization.black()
    torch.testing.assert_close(problem.normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).view(3),
                               torch.tensor(aug.fill, dtype=torch.float32))


def test_augmentation_on_toy_data_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="augment applies to image data only; spiral"):
        seeded_augment(Augmentation(), make_spiral(0), seed=0)
    with pytest.raises(ConfigError, match=r"students\[0\] \(hydra\+\)\.augment: unknown keys \['size'\]"):
        spec({"method": "hydra+", "heads": 2, "augment": {"size": 3}})


def test_distil_writes_the_same_student_records_as_a_config_run(tmp_path: Path) -> None:
    """`hydraplus.distil` trains through `distil_student` too: early stopping and the automatic
    lambda leave early_stopping.json and auto_lambda.json beside the student, as in config runs."""
    x, y = blob_images(120)
    members = train_members([TinyCNN(), TinyCNN()], x, y, steps=20)
    result = hydraplus.distil(members, (x, y), epochs=3, batch_size=20, patience=1, out=tmp_path / "run")
    folder = tmp_path / "run" / result.spec.name
    assert json.loads((folder / "early_stopping.json").read_text()) == result.early_stopping
    saved = json.loads((folder / "auto_lambda.json").read_text())
    assert saved["start"] == result.spec.lam.value and saved["final"] >= 0
    assert saved["probe"].startswith("off-data points made from the training inputs")
    assert saved["chosen_epoch"] in range(1, 5) and saved["reference_epoch"] <= 3


def test_distil_augments_like_a_config_run() -> None:
    """A student ``augment`` (and ``mixup``) setting is taken by `hydraplus.distil` (they were dropped
    before the one training path): they change what the student learns; augmenting non-image data is
    refused."""
    x, y = blob_images(80)
    members = train_members([TinyCNN(), TinyCNN()], x, y, steps=20)
    common: dict[str, Any] = {"method": "hydra", "epochs": 2, "batch_size": 20, "patience": None}
    plain = hydraplus.distil(members, (x, y), **common)
    cropped = hydraplus.distil(members, (x, y), augment={"crop_padding": 2}, **common)
    assert cropped.spec.augment is not None
    assert not torch.allclose(plain.predict(x[:8])["probs"], cropped.predict(x[:8])["probs"])
    mixed = hydraplus.distil(members, (x, y), mixup=0.4, **common)  # mixup too, as in a config run
    assert mixed.spec.mixup == 0.4
    assert not torch.allclose(plain.predict(x[:8])["probs"], mixed.predict(x[:8])["probs"])
    flat = [nn.Sequential(nn.Flatten(), nn.Linear(64, 3)) for _ in range(2)]
    with pytest.raises(ValueError, match="augment applies to image data only"):
        hydraplus.distil(flat, (x.flatten(1), y), augment={"crop_padding": 2}, **common)
