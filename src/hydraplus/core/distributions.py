"""How network outputs become distribution parameters, kept finite.

Log-variances (regression) and log-concentrations (EnDD) are clamped to ``±MAX_EXPONENT``
before ``exp``: beyond it float32 overflows or underflows, and no trained model needs more.
"""

from __future__ import annotations

from torch import Tensor

MAX_EXPONENT = 30.0


def bounded_exp(x: Tensor) -> Tensor:
    """``exp(x)`` with ``x`` clamped to ``[-MAX_EXPONENT, MAX_EXPONENT]``."""
    return x.clamp(-MAX_EXPONENT, MAX_EXPONENT).exp()


def split_gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
    """``[..., 2]`` outputs (mean, log-variance) to (mean, variance)."""
    return out[..., 0], bounded_exp(out[..., 1])


def concentrations_from_logits(logits: Tensor, temperature: float) -> Tensor:
    """Dirichlet concentrations ``exp(logits / T)``."""
    return bounded_exp(logits / temperature)
