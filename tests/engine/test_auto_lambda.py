"""The automatic diversity weight: its update rule, bounds and checkpointed state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydraplus.config import StudentSpec
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.engine.auto_lambda import AutoLambda, mean_epistemic
from hydraplus.engine.modules import DistillModule


def test_the_update_moves_lambda_toward_the_target_in_bounded_steps() -> None:
    control = AutoLambda(2.0, target=0.1)
    assert control.update(0.2) == pytest.approx(2.0 * 0.5**0.25)  # too much uncertainty: lower
    assert control.update(0.1) == pytest.approx(2.0 * 0.5**0.25)  # matched: unchanged
    assert control.update(1e-9) == pytest.approx(2.0 * 0.5**0.25 * 1.1)  # rises by at most 1.1x
    assert control.update(1e9) == pytest.approx(2.0 * 0.5**0.25 * 1.1 / 1.25)  # falls by at most 1.25x
    assert control.matched(0.109) and not control.matched(0.111)
    low = AutoLambda(1e-4, target=1.0)
    assert low.update(100.0) == 1e-4  # never below its floor
    with pytest.raises(ValueError, match="must start above 0"):
        AutoLambda(0.0, target=0.1)
    with pytest.raises(ValueError, match=r"epistemic uncertainty on the probe set is 0\.0"):
        AutoLambda(1.0, target=0.0)


def test_mean_epistemic_is_the_mutual_information_averaged_over_the_probe() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(4)])
    probe = torch.randn(50, 2)
    expected = classification_uncertainty(student(probe).detach())["epistemic"].mean()
    assert mean_epistemic(student, probe, "classification", batch_size=7) == pytest.approx(float(expected))
    assert student.training  # its mode is given back


def test_the_module_needs_a_probe_and_checkpoints_lambda() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    with pytest.raises(ValueError, match="an automatic lambda needs a probe set"):
        DistillModule(student, "hydra+", "classification", spec)
    module = DistillModule(student, "hydra+", "classification", spec, probe=(torch.randn(8, 2), 0.05))
    module.auto_lambda.value = 3.5  # type: ignore[union-attr]
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = DistillModule(student, "hydra+", "classification", spec, probe=(torch.randn(8, 2), 0.05))
    restored.on_load_checkpoint(checkpoint)
    assert restored.current_lambda() == 3.5
    with pytest.raises(ValueError, match="an automatic lambda has no ramp"):
        LambdaSchedule(1.0, 0, 5, auto=True)
