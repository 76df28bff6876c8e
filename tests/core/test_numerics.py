"""Losses and uncertainty stay finite (values and gradients) at extreme logits, temperatures
and log-variances."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from hydraplus.core.losses import (
    aggregation_loss,
    correctness_loss,
    dirichlet_nll,
    gaussian_aggregation_loss,
    gaussian_individuality_loss,
    gaussian_nll,
    individuality_loss,
)
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty

B, N, M, C = 6, 5, 3, 4
TEMPERATURES = [0.05, 1.0, 100.0]


def assert_finite_with_grads(fn: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
    """``fn(*inputs)`` (a scalar) and its gradient with respect to every input are finite."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    value = fn(*leaves)
    assert value.dim() == 0
    assert torch.isfinite(value), f"value is {value.item()}"
    value.backward()
    for i, leaf in enumerate(leaves):
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), f"gradient of input {i} not finite"
    return value


def extreme_logits(kind: str, k: int) -> Tensor:
    """``[B, k, C]`` logits at magnitude 1e4: random signs, all one class, or the opposite class."""
    g = torch.Generator().manual_seed(k)
    if kind == "random":
        return torch.randn(B, k, C, generator=g).sign() * 1e4
    onehot = torch.full((B, k, C), -1e4)
    onehot[..., 0 if kind == "confident" else C - 1] = 1e4
    return onehot


LOGIT_CASES = [("random", "random"), ("confident", "opposite"), ("opposite", "confident"),
               ("confident", "confident")]


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize(("teacher_kind", "student_kind"), LOGIT_CASES)
def test_classification_losses_finite_at_extreme_logits(teacher_kind: str, student_kind: str,
                                                        temperature: float) -> None:
    teacher, student = extreme_logits(teacher_kind, N), extreme_logits(student_kind, M)
    labels = torch.arange(B) % C
    assert_finite_with_grads(lambda s: correctness_loss(s / temperature, labels), student)
    assert_finite_with_grads(lambda t, s: aggregation_loss(t, s, temperature), teacher, student)
    assert_finite_with_grads(lambda t, s: individuality_loss(t, s, temperature), teacher, student)
    assert_finite_with_grads(lambda h, t: dirichlet_nll(h, t, temperature), student[:, 0], teacher)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_classification_losses_finite_at_ordinary_logits(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(B, N, C, generator=g) * 3, torch.randn(B, M, C, generator=g) * 3
    for loss in (aggregation_loss, individuality_loss):
        assert_finite_with_grads(lambda t, s, f=loss: f(t, s, temperature), teacher, student)
    assert_finite_with_grads(lambda h, t: dirichlet_nll(h, t, temperature), student[:, 0], teacher)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("kind", ["random", "confident"])
def test_uncertainty_decomposition_finite_at_extreme_logits(kind: str, temperature: float) -> None:
    logits = extreme_logits(kind, N) / temperature

    def total(x: Tensor) -> Tensor:
        parts = classification_uncertainty(x)
        return sum(v.sum() for v in parts.values())  # type: ignore[return-value]

    assert_finite_with_grads(total, logits)
    parts = classification_uncertainty(logits)
    for name, values in parts.items():
        assert ((values >= 0) & (values <= torch.log(torch.tensor(float(C))) + 1e-5)).all(), name


@pytest.mark.parametrize("log_var", [-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4])
def test_regression_losses_finite_at_extreme_log_variances(log_var: float) -> None:
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(B, N, 2, generator=g), torch.randn(B, M, 2, generator=g)
    teacher[..., 1], student[..., 1] = log_var, -log_var
    target = torch.randn(B, generator=g)
    same = teacher[:, :M].clone()
    assert_finite_with_grads(lambda s: gaussian_nll(s, target), student)
    assert_finite_with_grads(lambda t: gaussian_nll(t, target), teacher)
    assert_finite_with_grads(gaussian_aggregation_loss, teacher, student)
    assert_finite_with_grads(gaussian_individuality_loss, teacher, student)
    assert_finite_with_grads(gaussian_aggregation_loss, teacher, same)

    def total(x: Tensor) -> Tensor:
        return sum(v.sum() for v in regression_uncertainty(x).values())  # type: ignore[return-value]

    assert_finite_with_grads(total, teacher)
