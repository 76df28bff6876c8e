"""The single-head stochastic baselines: Drop, Gauss (Bayesian last layer) and EnDD."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hydraplus.core.distributions import concentrations_from_logits
from hydraplus.core.predict import predict
from hydraplus.core.stochastic import (
    BayesianLinear,
    DirichletStudent,
    DropoutStudent,
    GaussianStudent,
    split_last_linear,
)
from hydraplus.models import mlp


def core_and_head() -> tuple[nn.Module, nn.Sequential]:
    return mlp([2, 8], final_activation=True), mlp([8, 6, 3])


# --- Drop ---------------------------------------------------------------------------------


def test_dropout_student_samples_differ_and_stay_on_in_eval() -> None:
    core, head = core_and_head()
    student = DropoutStudent(core, head, samples=5)
    x = torch.randn(4, 2)
    out = predict(student, x)  # eval mode: dropout must stay on
    assert out.shape == (4, 5, 3)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_dropout_student_without_dropout_is_the_plain_head() -> None:
    core, head = core_and_head()
    student = DropoutStudent(core, head, samples=3, p=0.0)
    x = torch.randn(4, 2)
    out = student(x)
    expected = head(core(x))
    for k in range(3):
        torch.testing.assert_close(out[:, k], expected)


def test_dropout_acts_on_the_last_linear_input() -> None:
    # With p close to 1 almost all inputs of the last layer are dropped: outputs approach its bias.
    core, head = core_and_head()
    student = DropoutStudent(core, head, samples=200, p=0.999)
    out = student(torch.randn(2, 2))
    frac_bias = (out == head[-1].bias.detach()).all(-1).float().mean().item()
    assert frac_bias > 0.9


def test_dropout_student_validation() -> None:
    core, head = core_and_head()
    with pytest.raises(ValueError, match="dropout"):
        DropoutStudent(core, head, samples=2, p=1.0)
    with pytest.raises(ValueError, match="samples"):
        DropoutStudent(core, head, samples=0)
    with pytest.raises(TypeError, match="Sequential"):
        DropoutStudent(core, nn.Linear(8, 3), samples=2)
    with pytest.raises(TypeError, match="Linear"):
        split_last_linear(nn.Sequential(nn.Linear(8, 3), nn.ReLU()))


# --- Gauss --------------------------------------------------------------------------------


def test_bayesian_linear_kl_by_hand() -> None:
    layer = BayesianLinear(1, 1)
    with torch.no_grad():
        layer.weight_mu.fill_(0.5)
        layer.weight_log_var.fill_(math.log(0.25))
        layer.bias_mu.fill_(0.0)
        layer.bias_log_var.fill_(0.0)
    # KL(N(m, v) || N(0, 1)) = 0.5 (v + m^2 - 1 - log v)
    expected = 0.5 * (0.25 + 0.25 - 1 - math.log(0.25)) + 0.5 * (1 + 0 - 1 - 0)
    assert layer.kl().item() == pytest.approx(expected, rel=1e-6)
    normal = torch.distributions.Normal
    ref = torch.distributions.kl_divergence(normal(0.5, 0.5), normal(0.0, 1.0))
    assert layer.kl().item() == pytest.approx(ref.item(), rel=1e-5)


def test_bayesian_linear_kl_with_other_prior() -> None:
    layer = BayesianLinear(1, 1, prior_std=2.0)
    with torch.no_grad():
        layer.weight_mu.fill_(1.0)
        layer.weight_log_var.fill_(0.0)
        layer.bias_mu.fill_(0.0)
        layer.bias_log_var.fill_(math.log(4.0))
    # KL(N(1, 1) || N(0, 4)) = 0.5 ((1 + 1)/4 - 1 - 0 + log 4); the bias matches the prior: 0.
    assert layer.kl().item() == pytest.approx(0.5 * (0.5 - 1 + math.log(4.0)), rel=1e-6)
    with pytest.raises(ValueError, match="prior_std"):
        BayesianLinear(1, 1, prior_std=0.0)


def test_bayesian_linear_local_reparameterisation_moments() -> None:
    layer = BayesianLinear(1, 1)
    with torch.no_grad():
        layer.weight_mu.fill_(0.5)
        layer.weight_log_var.fill_(math.log(0.25))
        layer.bias_mu.fill_(1.0)
        layer.bias_log_var.fill_(0.0)
    z = torch.tensor([[2.0]])
    samples = layer(z, 20000)
    assert samples.shape == (1, 20000, 1)
    # mean = 0.5 * 2 + 1 = 2; variance = z^2 var_w + var_b = 4 * 0.25 + 1 = 2.
    assert samples.mean().item() == pytest.approx(2.0, abs=0.05)
    assert samples.var().item() == pytest.approx(2.0, rel=0.05)


def test_gaussian_student_starts_near_the_deterministic_head() -> None:
    core, head = core_and_head()
    x = torch.randn(4, 2)
    expected = head(core(x)).detach()
    student = GaussianStudent(core, head, samples=6)
    out = predict(student, x)
    assert out.shape == (4, 6, 3)
    # log-variance -10: noise std e^-5 sqrt(1 + |z|^2), a few hundredths at most here.
    torch.testing.assert_close(out, expected.unsqueeze(1).expand_as(out), rtol=0, atol=0.1)
    assert not torch.equal(out[:, 0], out[:, 1])  # still sampled in eval mode
    assert student.kl().item() > 0


def test_gaussian_student_log_variance_init() -> None:
    core, head = core_and_head()
    student = GaussianStudent(core, head, samples=2, init_log_var=-7.0)
    assert torch.all(student.last.weight_log_var == -7.0)
    torch.testing.assert_close(student.last.weight_mu.detach(), head[-1].weight.detach())


# --- EnDD ---------------------------------------------------------------------------------


def test_dirichlet_student_concentrations_and_samples() -> None:
    core, head = core_and_head()
    student = DirichletStudent(core, head, samples=4000, temperature=2.0)
    x = torch.randn(2, 2)
    logits = student.head_logits(x)
    alpha = student.concentrations(x)
    torch.testing.assert_close(alpha, torch.exp(logits / 2.0))
    out = student(x)
    assert out.shape == (2, 4000, 3)
    probs = out.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4000), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.softmax(out, -1), probs, rtol=0, atol=1e-5)  # valid logits
    # The samples' mean is the Dirichlet mean alpha / sum(alpha).
    torch.testing.assert_close(probs.mean(1), (alpha / alpha.sum(-1, keepdim=True)).detach(),
                               rtol=0, atol=0.03)


def test_concentrations_are_clamped_finite() -> None:
    alpha = concentrations_from_logits(torch.tensor([[1e4, -1e4, 0.0]]), 1.0)
    assert torch.isfinite(alpha).all() and (alpha > 0).all()
    assert alpha[0, 0].item() == pytest.approx(math.exp(30.0), rel=1e-5)


def test_dirichlet_student_validation() -> None:
    core, head = core_and_head()
    with pytest.raises(ValueError, match="temperature"):
        DirichletStudent(core, head, samples=2, temperature=0.0)
    with pytest.raises(ValueError, match="samples"):
        DirichletStudent(core, head, samples=0)
