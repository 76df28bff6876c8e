"""Single-head stochastic students of the baselines: Drop, Gauss and EnDD (docs/method.md#baselines).

Each returns K samples ``[B, K, D]`` from one head over the same core features,
in training (paired with the members in L3) and at test time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hydraplus.core.distributions import concentrations_from_logits


def split_last_linear(head: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """Split a Sequential head into (trunk, last Linear layer)."""
    if not isinstance(head, nn.Sequential) or not isinstance(head[-1], nn.Linear):
        raise TypeError(
            f"a stochastic head must be an nn.Sequential ending in nn.Linear, got {type(head).__name__}"
        )
    return head[:-1], head[-1]


def _check_samples(samples: int) -> int:
    if samples < 1:
        raise ValueError(f"number of samples must be >= 1, got {samples}")
    return samples


class DropoutStudent(nn.Module):
    """MC-dropout last layer: dropout (kept on at test time) on the last Linear's input."""

    def __init__(self, core: nn.Module, head: nn.Module, samples: int, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.core = core
        self.trunk, self.last = split_last_linear(head)
        self.samples, self.p = _check_samples(samples), p

    def forward(self, x: Tensor) -> Tensor:
        z = self.trunk(self.core(x))
        z = z.unsqueeze(1).expand(z.shape[0], self.samples, *z.shape[1:])
        return self.last(F.dropout(z, self.p, training=True))


class BayesianLinear(nn.Module):
    """Linear layer with factorised Gaussian weights, sampled by local reparameterisation."""

    def __init__(self, in_features: int, out_features: int, init_log_var: float = -10.0,
                 prior_std: float = 1.0):
        super().__init__()
        if prior_std <= 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std}")
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_log_var = nn.Parameter(torch.full((out_features, in_features), init_log_var))
        self.bias_log_var = nn.Parameter(torch.full((out_features,), init_log_var))
        self.prior_var = prior_std**2

    @classmethod
    def from_linear(cls, layer: nn.Linear, init_log_var: float = -10.0) -> BayesianLinear:
        out = cls(layer.in_features, layer.out_features, init_log_var)
        with torch.no_grad():
            out.weight_mu.copy_(layer.weight)
            if layer.bias is not None:
                out.bias_mu.copy_(layer.bias)
        return out

    def forward(self, z: Tensor, samples: int) -> Tensor:
        """``z [B, F]`` to ``samples`` draws of the outputs ``[B, samples, out]``."""
        mean = F.linear(z, self.weight_mu, self.bias_mu)
        var = F.linear(z.pow(2), self.weight_log_var.exp(), self.bias_log_var.exp())
        eps = torch.randn(mean.shape[0], samples, mean.shape[1], device=z.device, dtype=z.dtype)
        return mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * eps

    def kl(self) -> Tensor:
        """KL(q || N(0, prior_std^2)) summed over all weights and biases."""
        total = torch.zeros((), device=self.weight_mu.device)
        for mu, log_var in ((self.weight_mu, self.weight_log_var), (self.bias_mu, self.bias_log_var)):
            var = log_var.exp()
            total = total + 0.5 * (
                (var + mu.pow(2)) / self.prior_var - 1.0 - log_var + math.log(self.prior_var)
            ).sum()
        return total


class GaussianStudent(nn.Module):
    """Single head whose last Linear layer is Bayesian (the paper's Gauss baseline)."""

    def __init__(self, core: nn.Module, head: nn.Module, samples: int, init_log_var: float = -10.0):
        super().__init__()
        self.core = core
        self.trunk, last = split_last_linear(head)
        self.last = BayesianLinear.from_linear(last, init_log_var)
        self.samples = _check_samples(samples)

    def forward(self, x: Tensor) -> Tensor:
        return self.last(self.trunk(self.core(x)), self.samples)

    def kl(self) -> Tensor:
        return self.last.kl()


class DirichletStudent(nn.Module):
    """EnDD: one head whose ``exp(logits / T)`` are a Dirichlet's concentrations.

    ``forward`` draws K probability vectors from the Dirichlet and returns their logs
    (valid logits: ``softmax(log p) = p``).
    """

    def __init__(self, core: nn.Module, head: nn.Module, samples: int, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.core, self.head = core, head
        self.samples, self.temperature = _check_samples(samples), temperature

    def head_logits(self, x: Tensor) -> Tensor:
        """The head's raw logits ``[B, C]`` (the EnDD loss works on these)."""
        return self.head(self.core(x))

    def concentrations(self, x: Tensor) -> Tensor:
        """``exp(logits / T)`` in float32 (Dirichlet sampling has no 16-bit kernels)."""
        return concentrations_from_logits(self.head_logits(x).float(), self.temperature)

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.concentrations(x)
        probs = torch.distributions.Dirichlet(alpha).rsample((self.samples,))
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log().transpose(0, 1)

