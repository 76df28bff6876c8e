"""The automatic diversity weight: its update rule, bounds and checkpointed state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydraplus.config import StudentSpec
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.engine import auto_lambda
from hydraplus.engine.auto_lambda import AutoLambda, ProbeSet, teacher_probe, typical_epistemic
from hydraplus.engine.modules import DistillModule


def test_the_update_moves_lambda_toward_the_target_in_bounded_steps() -> None:
    control = AutoLambda(2.0, target=0.1)
    assert control.update(0.2) == pytest.approx(2.0 * 0.5**0.25)  # too much uncertainty: lower
    assert control.update(0.1) == pytest.approx(2.0 * 0.5**0.25)  # matched: unchanged
    assert control.update(1e-9) == pytest.approx(2.0 * 0.5**0.25 * 1.1)  # rises by at most 1.1x
    assert control.update(1e9) == pytest.approx(2.0 * 0.5**0.25 * 1.1 / 1.25)  # falls by at most 1.25x
    low = AutoLambda(1e-4, target=1.0)
    assert low.update(100.0) == 1e-4  # never below its floor
    with pytest.raises(ValueError, match="must start above 0"):
        AutoLambda(0.0, target=0.1)
    with pytest.raises(ValueError, match=r"epistemic uncertainty on the probe set is 0\.0"):
        AutoLambda(1.0, target=0.0)


def test_typical_epistemic_is_the_geometric_mean_of_the_mutual_information_over_the_probe() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(4)])
    probe = ProbeSet(torch.randn(50, 2), target=1.0, floor=1e-9)
    values = classification_uncertainty(student(probe.inputs).detach().double())["epistemic"]
    expected = values.clamp_min(1e-9).log().mean().exp()
    assert typical_epistemic(student, probe, "classification", batch_size=7) == pytest.approx(float(expected))
    assert student.training  # its mode is given back


def test_the_geometric_mean_follows_the_bulk_not_the_largest_values(monkeypatch: pytest.MonkeyPatch) -> None:
    values = torch.tensor([0.01, 0.01, 0.01, 10.0], dtype=torch.float64)
    monkeypatch.setattr(auto_lambda, "epistemic_values", lambda *args, **kwargs: values)
    probe = teacher_probe(nn.Identity(), torch.zeros(4, 2), "classification")
    assert probe.target == pytest.approx((0.01**3 * 10.0) ** 0.25)  # 0.056, where the mean is 2.5
    assert probe.floor == pytest.approx(1e-5 * 2.5075)
    monkeypatch.setattr(auto_lambda, "epistemic_values", lambda *args, **kwargs: torch.zeros(4))
    with pytest.raises(ValueError, match=r"epistemic uncertainty on the probe set is 0\.0"):
        teacher_probe(nn.Identity(), torch.zeros(4, 2), "classification")


def test_the_module_needs_a_probe_and_checkpoints_lambda() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    with pytest.raises(ValueError, match="an automatic lambda needs a probe set"):
        DistillModule(student, "hydra+", "classification", spec)
    probe = ProbeSet(torch.randn(8, 2), 0.05, 1e-7)
    module = DistillModule(student, "hydra+", "classification", spec, probe=probe)
    module.auto_lambda.value = 3.5  # type: ignore[union-attr]
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = DistillModule(student, "hydra+", "classification", spec, probe=probe)
    restored.on_load_checkpoint(checkpoint)
    assert restored.current_lambda() == 3.5
    with pytest.raises(ValueError, match="an automatic lambda has no ramp"):
        LambdaSchedule(1.0, 0, 5, auto=True)
