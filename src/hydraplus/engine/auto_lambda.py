"""Choosing the diversity weight lambda while training, instead of by hand.

The diversity term raises the heads' disagreement, so lambda sets how much epistemic
uncertainty the student shows away from the data. The controller compares the student's mean
epistemic uncertainty on a probe set (inputs away from the training data) with the ensemble's
and moves lambda multiplicatively toward the value where they match:

    lambda <- lambda * clip((target / measured) ** gain, 1 / max_step, max_step)

once per epoch, on the weights the previous epoch ended with. Steps are bounded so one odd
epoch cannot throw lambda far, and lambda stays within [low, high].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hydraplus.core.modes import evaluating
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty

TOLERANCE = 0.10  # "matched": within 10% of the ensemble's mean epistemic uncertainty
WARMUP_FRACTION = 0.1  # lambda stays at its start while the student first fits the teacher


def warmup_epochs(epochs: int) -> int:
    """The first epoch at which the controller moves lambda."""
    return max(1, round(WARMUP_FRACTION * epochs))


@dataclass
class AutoLambda:
    """The controller's state: the current lambda and the target it steers toward."""

    value: float
    target: float
    gain: float = 0.25
    max_up: float = 1.1
    max_down: float = 1.25
    low: float = 1e-4
    high: float = 100.0

    def __post_init__(self) -> None:
        if not self.value > 0:
            raise ValueError(f"an automatic lambda must start above 0, got {self.value}")
        if not self.target > 0:
            raise ValueError(f"the ensemble's epistemic uncertainty on the probe set is {self.target}; "
                             "an automatic lambda needs it to be above 0")

    def update(self, measured: float) -> float:
        """The next lambda after measuring the student's mean epistemic uncertainty."""
        ratio = self.target / max(measured, 1e-12)
        step = min(max(ratio**self.gain, 1 / self.max_down), self.max_up)
        self.value = min(max(self.value * step, self.low), self.high)
        return self.value

    def matched(self, measured: float) -> bool:
        return abs(measured - self.target) <= TOLERANCE * self.target


@torch.no_grad()
def mean_epistemic(model: nn.Module, probe: Tensor, task: str, batch_size: int = 1024) -> float:
    """A model's mean epistemic uncertainty (mutual information, or variance of the means) on ``probe``."""
    decompose = classification_uncertainty if task == "classification" else regression_uncertainty
    device = next(model.parameters(), torch.empty(0)).device
    total = 0.0
    with evaluating(model), torch.random.fork_rng(devices=[]):  # sampling students: RNG untouched
        for chunk in torch.split(probe, batch_size):
            total += float(decompose(model(chunk.to(device)).float())["epistemic"].sum())
    return total / len(probe)


def log_ratio(measured: float, target: float) -> float:
    """How far off the student is, as log(measured / target) (0 = matched)."""
    return math.log(max(measured, 1e-12) / target)
