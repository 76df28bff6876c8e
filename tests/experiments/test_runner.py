"""The runner's pieces that need no training: a student's augmentation, seeded for the engine.

(Runs themselves: tests/integration/.)
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from _dummies import image_config, image_problem
from hydraplus.config import ConfigError, StudentSpec, parse_config
from hydraplus.core.augment import Augmentation
from hydraplus.data.toy import make_spiral
from hydraplus.experiments.runner import seeded_augment


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
