"""Choosing the diversity weight lambda while training, instead of by hand.

The diversity term raises the heads' disagreement, so lambda sets how much epistemic
uncertainty the student shows away from the data. The controller compares the student's
typical epistemic uncertainty on a probe set (inputs away from the training data) with the
ensemble's and moves lambda multiplicatively toward the value where they match:

    lambda <- lambda * clip((target / measured) ** gain, 1 / max_down, max_up)

"Typical" is the geometric mean over the probe inputs: epistemic uncertainty spans orders of
magnitude between inputs near and far from the data, and an arithmetic mean follows the few
largest values, so a student matched on it can still be far from the ensemble on most inputs.

The diversity term can also break the fit: heads pushed apart everywhere disagree on the data
too, and a controller that only looks off the data meets its target with a student whose
predictions on the data are flat. So a guard watches the student's fit to the teacher on a
fixed sample of the training inputs (the KL divergence of its mean prediction from the
teacher's, and how often their classes agree). Lambda is 0 during a warm-up, so the fit reached
there is a lambda = 0 reference; afterwards the best fit seen so far is the reference. When the
fit falls short of it by more than a tolerance, lambda is cut and may never again rise above the
value it was cut to.

Lambda moves once per epoch, on the weights the previous epoch ended with. Steps are bounded so
one odd epoch cannot throw lambda far, and lambda stays within [low, high].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hydraplus.core.losses import gaussian_kl
from hydraplus.core.modes import evaluating
from hydraplus.core.uncertainty import classification_uncertainty, predictive_gaussian, regression_uncertainty

WARMUP_FRACTION = 0.1  # lambda is 0 while the student first fits the teacher
FLOOR_FRACTION = 1e-5  # values below this fraction of the teacher's mean count as this floor
GUARD_SIZE = 1000  # training inputs on which the guard compares the student with the teacher
KL_SLACK = 0.1  # the guard allows the KL to grow by this fraction of the reference's...
KL_ALLOWANCE = 0.002  # ...plus this many nats
AGREEMENT_SLACK = 0.01  # and the class agreement to fall by this fraction of the inputs
CUT = 0.25  # lambda's factor when the guard finds the fit broken
RAMP = 1e-3  # lambda's first value after the warm-up, as a fraction of its start value
RISE_FRACTION = 0.3  # the fraction of the epochs in which lambda can climb from the ramp to its start


def warmup_epochs(epochs: int) -> int:
    """The first epoch at which the controller moves lambda."""
    return max(1, round(WARMUP_FRACTION * epochs))


def rise_limit(epochs: int) -> float:
    """The largest factor lambda may rise by in one epoch: enough to climb from ``RAMP`` times its
    start to the start in ``RISE_FRACTION`` of the epochs (short runs must find the scale fast, long
    ones move gently), and at least 1.1."""
    return max(1.1, RAMP ** (-1 / max(1.0, RISE_FRACTION * epochs)))


class Fit(NamedTuple):
    """A student's fit to the teacher on the guard inputs: the mean KL divergence of its mean
    prediction from the teacher's, and (classification) the fraction of inputs whose class agrees."""

    kl: float
    agreement: float | None = None

    def worse_than(self, reference: Fit) -> bool:
        """Whether this fit falls short of ``reference`` by more than the guard's tolerance."""
        if self.kl > reference.kl * (1 + KL_SLACK) + KL_ALLOWANCE:
            return True
        return (self.agreement is not None and reference.agreement is not None
                and self.agreement < reference.agreement - AGREEMENT_SLACK)

    def at_least(self, reference: Fit) -> bool:
        """Whether this fit is as good as ``reference`` on both measures (a new best)."""
        return self.kl <= reference.kl and (self.agreement is None or reference.agreement is None
                                            or self.agreement >= reference.agreement)

    def best(self, other: Fit) -> Fit:
        """The better of the two on each measure (the guard's running reference)."""
        agreement = (None if self.agreement is None or other.agreement is None
                     else max(self.agreement, other.agreement))
        return Fit(min(self.kl, other.kl), agreement)


@dataclass
class AutoLambda:
    """The controller's state: the current lambda, the target it steers toward, the ceiling the
    guard has set (``high`` until it first cuts) and the guard's reference fit."""

    value: float
    target: float
    gain: float = 0.5
    max_up: float = 4.0
    max_down: float = 1.25
    low: float = 1e-4
    high: float = 100.0
    ceiling: float | None = None
    reference: Fit | None = None
    started: bool = False

    def __post_init__(self) -> None:
        if not self.value > 0:
            raise ValueError(f"an automatic lambda must start above 0, got {self.value}")
        if not self.target > 0:
            raise ValueError(f"the ensemble's epistemic uncertainty on the probe set is {self.target}; "
                             "an automatic lambda needs it to be above 0")

    def update(self, measured: float, fit: Fit | None = None) -> float:
        """The next lambda after measuring the student's typical epistemic uncertainty and (with a
        guard) its fit to the teacher.

        The first measurement comes after the warm-up at lambda = 0: a student already at or above
        the target needs no diversity (lambda stays 0); otherwise lambda starts at ``RAMP`` times
        its start value. Then: when the fit is worse than the reference by more than the tolerance,
        lambda is cut to ``CUT`` times and capped there for good; otherwise it steps toward the
        target, rising only when the fit is the best so far (a fit that has stopped improving may be
        the diversity term's first effect). Below ``low`` it is 0, and from 0 a rise goes to ``low``."""
        rise = self.max_up
        if fit is not None:
            broken = self.reference is not None and fit.worse_than(self.reference)
            if self.reference is not None and not fit.at_least(self.reference):
                rise = 1.0  # the fit has stopped improving: lambda may fall, not rise
            self.reference = fit if self.reference is None else self.reference.best(fit)
            if broken:
                self.value = self._floored(self.value * CUT)
                self.ceiling = self.value
                return self.value
        ratio = self.target / max(measured, 1e-12)
        if not self.started:
            self.started = True
            self.value = 0.0 if ratio <= 1 else self.value * RAMP
            return self.value
        step = min(max(ratio**self.gain, 1 / self.max_down), rise)
        top = self.high if self.ceiling is None else self.ceiling
        value = (self.low if step > 1 else 0.0) if self.value == 0 else self._floored(self.value * step)
        self.value = min(value, top)
        return self.value

    def _floored(self, value: float) -> float:
        """``value``, or 0 below ``low``."""
        return value if value >= self.low else 0.0

    def state(self) -> dict[str, float | None]:
        """What a checkpoint keeps (a resumed run takes the same steps)."""
        reference = self.reference or Fit(math.nan)
        return {"value": self.value, "ceiling": self.ceiling, "reference_kl": reference.kl,
                "reference_agreement": reference.agreement, "started": self.started}

    def restore(self, state: dict[str, float | None]) -> None:
        """Take back a `state`."""
        self.value = float(state["value"])  # type: ignore[arg-type]
        self.ceiling = state.get("ceiling")
        self.started = bool(state.get("started", True))
        kl = state.get("reference_kl")
        self.reference = None if kl is None or math.isnan(kl) else Fit(kl, state.get("reference_agreement"))


class Guard(NamedTuple):
    """Training inputs and the teacher's mean prediction on them (probabilities ``[G, C]``, or a
    Gaussian's mean and variance ``[G, 2]``)."""

    inputs: Tensor
    teacher: Tensor


class ProbeSet(NamedTuple):
    """The controller's probe inputs, the teacher's typical epistemic uncertainty on them (the
    target), the floor below which values count as the floor (so an exact 0 has a logarithm) and
    the guard (None: lambda is steered by the probe alone)."""

    inputs: Tensor
    target: float
    floor: float
    guard: Guard | None = None


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


@torch.no_grad()
def mean_prediction(model: nn.Module, inputs: Tensor, task: str, batch_size: int = 1024) -> Tensor:
    """A model's mean prediction over its heads or members, in float64: probabilities ``[B, C]``,
    or the moment-matched Gaussian's mean and variance ``[B, 2]``."""
    device = next(model.parameters(), torch.empty(0)).device
    out = []
    with evaluating(model), torch.random.fork_rng(devices=[]):
        for chunk in torch.split(inputs, batch_size):
            outputs = model(chunk.to(device)).double().cpu()
            if task == "classification":
                out.append(outputs.softmax(-1).mean(1))
            else:
                out.append(torch.stack(predictive_gaussian(outputs), -1).double())
    return torch.cat(out)


def fit_to(teacher: Tensor, student: Tensor, task: str) -> Fit:
    """How closely a student's mean predictions follow the teacher's (see `Fit`)."""
    if task == "classification":
        tiny = torch.finfo(torch.float64).tiny
        kl = (teacher * (teacher.clamp_min(tiny).log() - student.clamp_min(tiny).log())).sum(-1)
        return Fit(float(kl.mean()), float((teacher.argmax(-1) == student.argmax(-1)).double().mean()))
    (mu_t, var_t), (mu_s, var_s) = teacher.unbind(-1), student.clamp_min(1e-12).unbind(-1)
    return Fit(float(gaussian_kl(mu_t, var_t.clamp_min(1e-12), mu_s, var_s).mean()))


def student_fit(model: nn.Module, guard: Guard, task: str) -> Fit:
    """The student's fit to the teacher on the guard inputs."""
    return fit_to(guard.teacher, mean_prediction(model, guard.inputs, task), task)


def guard_inputs(train: Tensor, seed: int) -> Tensor:
    """Up to `GUARD_SIZE` training inputs, drawn with ``seed``."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train[order[:GUARD_SIZE]]


def teacher_probe(teacher: nn.Module, inputs: Tensor, task: str, train: Tensor | None = None,
                  seed: int = 0) -> ProbeSet:
    """The probe set with the teacher's typical epistemic uncertainty on it; with ``train`` (the
    training inputs) also the guard, on a sample of them drawn with ``seed``."""
    values = epistemic_values(teacher, inputs, task)
    mean = float(values.mean())
    if not mean > 0:
        raise ValueError(f"the ensemble's epistemic uncertainty on the probe set is {mean}; "
                         "an automatic lambda needs it to be above 0")
    floor = FLOOR_FRACTION * mean
    guard = None
    if train is not None:
        sample = guard_inputs(train, seed)
        guard = Guard(sample, mean_prediction(teacher, sample, task))
    return ProbeSet(inputs, geometric_mean(values, floor), floor, guard)


def typical_epistemic(model: nn.Module, probe: ProbeSet, task: str, batch_size: int = 1024) -> float:
    """A model's typical (geometric-mean) epistemic uncertainty on the probe inputs."""
    return geometric_mean(epistemic_values(model, probe.inputs, task, batch_size), probe.floor)


def log_ratio(measured: float, target: float) -> float:
    """How far off the student is, as log(measured / target) (0 = matched)."""
    return math.log(max(measured, 1e-12) / target)
