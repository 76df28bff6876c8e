"""Choosing the diversity weight lambda while training, instead of by hand.

The diversity term raises the heads' disagreement, so lambda sets how much epistemic
uncertainty the student shows away from the data. The controller compares the student's
typical epistemic uncertainty on a probe set (inputs away from the training data) with the
ensemble's and moves lambda multiplicatively toward the value where they match:

    lambda <- lambda * clip((target / measured) ** gain, 1 / max_down, max_up)

"Typical" is the geometric mean over the probe inputs: epistemic uncertainty spans orders of
magnitude between inputs near and far from the data, and an arithmetic mean follows the few
largest values, so a student matched on it can still be far from the ensemble on most inputs.

once per epoch, on the weights the previous epoch ended with. Steps are bounded so one odd
epoch cannot throw lambda far, and lambda stays within [low, high].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hydraplus.core.modes import evaluating
from hydraplus.core.uncertainty import classification_uncertainty, regression_uncertainty

WARMUP_FRACTION = 0.1  # lambda stays at its start while the student first fits the teacher
FLOOR_FRACTION = 1e-5  # values below this fraction of the teacher's mean count as this floor


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
        """The next lambda after measuring the student's typical epistemic uncertainty."""
        ratio = self.target / max(measured, 1e-12)
        step = min(max(ratio**self.gain, 1 / self.max_down), self.max_up)
        self.value = min(max(self.value * step, self.low), self.high)
        return self.value


class ProbeSet(NamedTuple):
    """The controller's probe inputs, the teacher's typical epistemic uncertainty on them (the
    target) and the floor below which values count as the floor (so an exact 0 has a logarithm)."""

    inputs: Tensor
    target: float
    floor: float


@torch.no_grad()
def epistemic_values(model: nn.Module, inputs: Tensor, task: str, batch_size: int = 1024) -> Tensor:
    """A model's epistemic uncertainty (mutual information, or variance of the means) per input,
    decomposed in float64: far from the data it can be a difference of two entropies at 1e-6."""
    decompose = classification_uncertainty if task == "classification" else regression_uncertainty
    device = next(model.parameters(), torch.empty(0)).device
    with evaluating(model), torch.random.fork_rng(devices=[]):  # sampling students: RNG untouched
        return torch.cat([decompose(model(chunk.to(device)).double())["epistemic"].cpu()
                          for chunk in torch.split(inputs, batch_size)])


def geometric_mean(values: Tensor, floor: float) -> float:
    """exp(mean(log(max(value, floor)))): every input's level counts alike, whatever its scale."""
    return float(values.clamp_min(floor).log().mean().exp())


def teacher_probe(teacher: nn.Module, inputs: Tensor, task: str) -> ProbeSet:
    """The probe set with the teacher's typical epistemic uncertainty on it."""
    values = epistemic_values(teacher, inputs, task)
    mean = float(values.mean())
    if not mean > 0:
        raise ValueError(f"the ensemble's epistemic uncertainty on the probe set is {mean}; "
                         "an automatic lambda needs it to be above 0")
    floor = FLOOR_FRACTION * mean
    return ProbeSet(inputs, geometric_mean(values, floor), floor)


def typical_epistemic(model: nn.Module, probe: ProbeSet, task: str, batch_size: int = 1024) -> float:
    """A model's typical (geometric-mean) epistemic uncertainty on the probe inputs."""
    return geometric_mean(epistemic_values(model, probe.inputs, task, batch_size), probe.floor)


def log_ratio(measured: float, target: float) -> float:
    """How far off the student is, as log(measured / target) (0 = matched)."""
    return math.log(max(measured, 1e-12) / target)
