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
too. So an automatic run is built so that it cannot end worse than the lambda = 0 run on the
controller's own measures:

1. It first *is* the lambda = 0 run, bit for bit (lambda is 0 and the controller does nothing),
   until that run would end (its epoch cap, or early stopping); its weights (early stopping's
   best) are the lambda = 0 student.
2. When that student is at least as uncertain as the ensemble on the probe, the run ends there.
   Otherwise a diversity phase of `diversity_epochs` more epochs continues from it (the learning
   rate restarting its cosine schedule from the full rate), lambda starting
   at ``RAMP`` times its start value and stepping toward the target once per epoch; when the fit to
   the teacher on the guard inputs falls short of the lambda = 0 student's by more than a tolerance,
   lambda is cut and capped (`Fit.worse_than`).
3. Every epoch of that phase is a candidate (`Candidate`), and the run ends with the one whose
   epistemic histogram on the probe is closest to the teacher's among those that fit the teacher
   as well as the lambda = 0 student (`Candidate.as_good_as`) and are closer to the teacher's
   histogram than it on the whole probe and on each half of it (`Candidate.closer_than`); with
   none, the lambda = 0 student itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hydraplus.core.losses import gaussian_kl
from hydraplus.core.modes import evaluating
from hydraplus.core.uncertainty import (
    classification_uncertainty,
    predictive_gaussian,
    regression_uncertainty,
    total_variation,
)

FLOOR_FRACTION = 1e-5  # values below this fraction of the teacher's mean count as this floor
GUARD_SIZE = 1000  # training inputs on which the guard compares the student with the teacher
KL_SLACK = 0.1  # the guard allows the KL to grow by this fraction of the reference's...
KL_ALLOWANCE = 0.002  # ...plus this many nats
AGREEMENT_SLACK = 0.01  # and the class agreement to fall by this fraction of the inputs
CUT = 0.25  # lambda's factor when the guard finds the fit broken
RAMP = 1e-3  # lambda's first value after the warm-up, as a fraction of its start value
PHASE_FRACTION = 0.3  # the diversity phase's length, as a fraction of the student's epochs
TV_BINS = 50  # histogram bins of the probe's epistemic values (as every TV in the reports)
TV_ROUNDING = 1e-6  # TVs closer than this are equal (float32 histograms of equal counts)
UPPER_QUANTILE = 0.99  # regression: the histograms run up to this quantile of the teacher's values


def diversity_epochs(epochs: int) -> int:
    """The diversity phase's epochs for a student of ``epochs`` epochs: ``PHASE_FRACTION`` of them,
    at least 2."""
    return max(2, math.ceil(PHASE_FRACTION * epochs))


def rise_limit(epochs: int) -> float:
    """The largest factor lambda may rise by in one epoch: enough to climb from ``RAMP`` times its
    start to the start within the diversity phase (short runs must find the scale fast, long ones
    move gently), and at least 1.1."""
    return max(1.1, RAMP ** (-1 / (diversity_epochs(epochs) - 1)))


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


@dataclass
class AutoLambda:
    """The controller's state: the current lambda, the target it steers toward, the ceiling the
    guard has set (``high`` until it first cuts), the lambda = 0 student's fit (the guard's
    reference) and whether the diversity phase has been decided."""

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

    def start(self, measured: float, fit: Fit | None = None) -> float:
        """The first lambda, from the lambda = 0 student's typical epistemic uncertainty and fit:
        0 (no diversity phase) when it is at least the target, else ``RAMP`` times the start value."""
        self.started, self.reference = True, fit
        self.value = 0.0 if measured >= self.target else self.value * RAMP
        return self.value

    def update(self, measured: float, fit: Fit | None = None) -> float:
        """The next lambda after an epoch of the diversity phase: cut to ``CUT`` times and capped there
        for good when the fit is worse than the lambda = 0 student's by more than the tolerance;
        otherwise a step toward the target. Below ``low`` it is 0, and from 0 a rise goes to ``low``."""
        if fit is not None and self.reference is not None and fit.worse_than(self.reference):
            self.value = self._floored(self.value * CUT)
            self.ceiling = self.value
            return self.value
        ratio = self.target / max(measured, 1e-12)
        step = min(max(ratio**self.gain, 1 / self.max_down), self.max_up)
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
    target), the floor below which values count as the floor (so an exact 0 has a logarithm), the
    guard (None: lambda is steered by the probe alone, and the weights are never chosen), the
    teacher's epistemic value on each probe input and the top of their histograms' range (log C
    for classification, the teacher's largest value for regression)."""

    inputs: Tensor
    target: float
    floor: float
    guard: Guard | None = None
    teacher_values: Tensor | None = None
    upper: float = 1.0


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


def kl_values(teacher: Tensor, student: Tensor, task: str) -> tuple[Tensor, float | None]:
    """The KL divergence of a student's mean prediction from the teacher's on each guard input, and
    (classification) the fraction of inputs whose class agrees."""
    if task == "classification":
        tiny = torch.finfo(torch.float64).tiny
        kl = (teacher * (teacher.clamp_min(tiny).log() - student.clamp_min(tiny).log())).sum(-1)
        return kl, float((teacher.argmax(-1) == student.argmax(-1)).double().mean())
    (mu_t, var_t), (mu_s, var_s) = teacher.unbind(-1), student.clamp_min(1e-12).unbind(-1)
    return gaussian_kl(mu_t, var_t.clamp_min(1e-12), mu_s, var_s), None


def fit_to(teacher: Tensor, student: Tensor, task: str) -> Fit:
    """How closely a student's mean predictions follow the teacher's (see `Fit`)."""
    kl, agreement = kl_values(teacher, student, task)
    return Fit(float(kl.mean()), agreement)


def student_kl_values(model: nn.Module, guard: Guard, task: str) -> tuple[Tensor, float | None]:
    """`kl_values` of ``model`` on the guard inputs."""
    return kl_values(guard.teacher, mean_prediction(model, guard.inputs, task), task)


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
    if task == "classification":
        upper = math.log(mean_prediction(teacher, inputs[:1], task).shape[-1])
    else:  # the bulk's range: the largest few values of a variance are far above the rest
        upper = float(torch.quantile(values, UPPER_QUANTILE))
    return ProbeSet(inputs, geometric_mean(values, floor), floor, guard, values, upper)


def typical_epistemic(model: nn.Module, probe: ProbeSet, task: str, batch_size: int = 1024) -> float:
    """A model's typical (geometric-mean) epistemic uncertainty on the probe inputs."""
    return geometric_mean(epistemic_values(model, probe.inputs, task, batch_size), probe.floor)


class OffData(NamedTuple):
    """A model's epistemic uncertainty on the probe: typical (geometric mean), and the total variation
    between its histogram and the teacher's on the whole probe and on each half of it (NaN without
    the teacher's values)."""

    typical: float
    tv: float
    tv_halves: tuple[float, float]


def off_data(model: nn.Module, probe: ProbeSet, task: str, batch_size: int = 1024) -> OffData:
    """`OffData` of ``model`` on ``probe``, from one pass over its inputs."""
    values = epistemic_values(model, probe.inputs, task, batch_size)
    if probe.teacher_values is None:
        return OffData(geometric_mean(values, probe.floor), math.nan, (math.nan, math.nan))
    half = len(values) // 2

    def tv(part: slice) -> float:
        return total_variation(values[part].float(), probe.teacher_values[part].float(),  # type: ignore[index]
                               probe.upper, TV_BINS)

    return OffData(geometric_mean(values, probe.floor), tv(slice(None)),
                   (tv(slice(None, half)), tv(slice(half, None))))


class Candidate(NamedTuple):
    """Weights a run may end with: after ``epoch`` epochs, with the KL of their mean prediction from
    the teacher's on each guard input, their class agreement there (classification) and their
    `OffData` TVs on the probe."""

    epoch: int
    kl: Tensor
    agreement: float | None
    tv: float
    tv_halves: tuple[float, float]

    @property
    def fit(self) -> Fit:
        return Fit(float(self.kl.mean()), self.agreement)

    def as_good_as(self, reference: Candidate) -> bool:
        """Whether this candidate fits the teacher as well as ``reference``, up to the guard sample's
        noise: its mean KL above the reference's by at most the standard error of the per-input
        differences, and its class agreement no lower."""
        if (self.agreement is not None and reference.agreement is not None
                and self.agreement < reference.agreement):
            return False
        difference = self.kl - reference.kl
        se = float(difference.std() / math.sqrt(len(difference))) if len(difference) > 1 else 0.0
        return float(difference.mean()) <= se

    def closer_than(self, reference: Candidate) -> bool:
        """Whether this candidate's epistemic histogram is closer to the teacher's than
        ``reference``'s on the whole probe and on each half of it (a gain that one half alone shows
        may be the draw's noise), by more than float rounding (a TV moves in steps of at least
        1 / inputs; below that, two histograms of equal counts differ in their last bits)."""
        pairs = [(self.tv, reference.tv), *zip(self.tv_halves, reference.tv_halves, strict=True)]
        return all(a < b - TV_ROUNDING for a, b in pairs)


def _cpu(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}


class Selection:
    """The lambda = 0 student (the reference) and the best diversity-phase candidate accepted so far
    (as good a fit, a closer histogram: the lowest TV among those), each with its weights on the CPU."""

    def __init__(self) -> None:
        self.reference: tuple[Candidate, dict[str, Tensor]] | None = None
        self.best: tuple[Candidate, dict[str, Tensor]] | None = None

    def set_reference(self, candidate: Candidate, weights: dict[str, Tensor]) -> None:
        self.reference, self.best = (candidate, _cpu(weights)), None

    def offer(self, candidate: Candidate, weights: dict[str, Tensor]) -> bool:
        """Keep ``candidate`` if it is accepted and better than the best so far; whether it was kept."""
        if self.reference is None:
            raise ValueError("the lambda = 0 student must be measured before any candidate")
        reference = self.reference[0]
        if not (candidate.as_good_as(reference) and candidate.closer_than(reference)):
            return False
        if self.best is not None and self.best[0].tv <= candidate.tv:
            return False
        self.best = (candidate, _cpu(weights))
        return True

    def chosen(self) -> tuple[Candidate, dict[str, Tensor]]:
        """The best accepted candidate, else the lambda = 0 student."""
        if self.reference is None:
            raise ValueError("no lambda = 0 student to choose from")
        return self.best or self.reference

    def summary(self) -> dict[str, object]:
        """What the run ended with, for ``auto_lambda.json``: the lambda = 0 student's epoch, the
        chosen weights' epoch and kind, and both candidates' probe TV and guard KL."""
        if self.reference is None:
            raise ValueError("no lambda = 0 student to summarise")
        chosen = self.chosen()[0]
        return {"reference_epoch": self.reference[0].epoch, "chosen_epoch": chosen.epoch,
                "chosen": "lambda = 0 student" if self.best is None else "diversity-phase candidate",
                "probe_tv": {"reference": self.reference[0].tv, "chosen": chosen.tv},
                "guard_kl": {"reference": self.reference[0].fit.kl, "chosen": chosen.fit.kl}}

    def state(self) -> dict[str, object]:
        """What a checkpoint keeps."""
        def saved(item: tuple[Candidate, dict[str, Tensor]] | None) -> dict[str, object] | None:
            return None if item is None else {**item[0]._asdict(), "weights": item[1]}
        return {"reference": saved(self.reference), "best": saved(self.best)}

    def restore(self, state: dict[str, object]) -> None:
        """Take back a `state`."""
        def loaded(item: object) -> tuple[Candidate, dict[str, Tensor]] | None:
            if item is None:
                return None
            fields = dict(item)  # type: ignore[call-overload]
            weights = fields.pop("weights")
            fields["tv_halves"] = tuple(fields["tv_halves"])
            return Candidate(**fields), weights
        self.reference, self.best = loaded(state.get("reference")), loaded(state.get("best"))


def log_ratio(measured: float, target: float) -> float:
    """How far off the student is, as log(measured / target) (0 = matched)."""
    return math.log(max(measured, 1e-12) / target)
