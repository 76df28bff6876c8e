"""Pure-PyTorch core: containers, losses, uncertainty and metrics, usable in any loop."""

from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.losses import (
    LossWeights,
    aggregation_loss,
    correctness_loss,
    dirichlet_nll,
    distillation_terms,
    diversity_loss,
    gaussian_aggregation_loss,
    gaussian_individuality_loss,
    gaussian_nll,
    individuality_loss,
)
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.stochastic import DirichletStudent, DropoutStudent, GaussianStudent
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty

__all__ = [
    "DirichletStudent",
    "DropoutStudent",
    "Ensemble",
    "GaussianStudent",
    "LambdaSchedule",
    "LossWeights",
    "MultiHeadStudent",
    "aggregation_loss",
    "classification_uncertainty",
    "correctness_loss",
    "dirichlet_nll",
    "distillation_terms",
    "diversity_loss",
    "gaussian_aggregation_loss",
    "gaussian_individuality_loss",
    "gaussian_nll",
    "individuality_loss",
    "regression_uncertainty",
]
