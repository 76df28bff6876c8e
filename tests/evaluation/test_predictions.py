"""Predictions: every model's outputs on one input set, a spread-scaled student's from its student's."""

import pytest
import torch
from torch import nn

from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.predict import predict
from hydraplus.core.spread import SpreadScaled
from hydraplus.evaluation.predictions import Predictions


class Counting(nn.Module):
    """A three-head student that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.student = MultiHeadStudent(nn.Linear(4, 6), [nn.Linear(6, 5) for _ in range(3)])
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.student(x)


def test_spread_scaled_outputs_come_from_the_students_and_equal_its_own_forward() -> None:
    torch.manual_seed(0)
    x = torch.randn(50, 4)
    student = Counting()
    scaled = SpreadScaled(student, 1.7, "classification")
    predictions = Predictions(x)
    out = predictions(student)
    moved = predictions(scaled)
    assert student.calls == 1  # the scaled student did not run its student again
    assert torch.equal(out, predict(student, x))
    assert torch.equal(moved, predict(scaled, x))  # the same floats as its own forward pass
    assert student.calls == 3


def test_without_its_student_first_a_spread_scaled_student_runs_itself() -> None:
    torch.manual_seed(0)
    x = torch.randn(20, 4)
    student = Counting()
    assert torch.equal(Predictions(x)(SpreadScaled(student, 0.5, "classification")),
                       predict(SpreadScaled(student, 0.5, "classification"), x))


class Sampling(nn.Module):
    """A model that draws random numbers in eval mode, as a sampling student does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + torch.rand_like(x)).unsqueeze(1)


def test_inputs_are_checked_once_and_sampling_draws_can_leave_the_random_state() -> None:
    with pytest.raises(ValueError, match="val inputs"):
        Predictions(torch.tensor([[0.0, float("nan")]]), name="val inputs")
    x = torch.zeros(8, 4)
    torch.manual_seed(3)
    expected = torch.rand(1)
    for keep_rng in (True, False):
        torch.manual_seed(3)
        Predictions(x, keep_rng=keep_rng)(Sampling())
        assert torch.equal(torch.rand(1), expected) == keep_rng
