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

Once lambda has left 0 the run is no longer the lambda = 0 run, and nothing says its last (or
early-stopped) weights match the ensemble off the data better than a lambda = 0 student would. So
every measured epoch is a candidate (`Candidate`: its fit on the guard inputs and the total
variation between its and the teacher's epistemic histograms on the probe), and at the end the
weights returned are the candidate with the histogram closest to the teacher's among those whose
fit is as good as the best fit's (`Candidates`): KL above the lowest by at most the standard error
of the per-input differences, class agreement no lower. The lambda = 0 epochs are candidates too,
so a rise that only made the probe's histogram worse is undone. A run whose lambda never left 0
keeps its weights: it is the lambda = 0 run, bit for bit (the controller only reads the model, in
its own random state).
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

WARMUP_FRACTION = 0.1  # lambda is 0 while the student first fits the teacher
FLOOR_FRACTION = 1e-5  # values below this fraction of the teacher's mean count as this floor
GUARD_SIZE = 1000  # training inputs on which the guard compares the student with the teacher
KL_SLACK = 0.1  # the guard allows the KL to grow by this fraction of the reference's...
KL_ALLOWANCE = 0.002  # ...plus this many nats
AGREEMENT_SLACK = 0.01  # and the class agreement to fall by this fraction of the inputs
CUT = 0.25  # lambda's factor when the guard finds the fit broken
RAMP = 1e-3  # lambda's first value after the warm-up, as a fraction of its start value
RISE_FRACTION = 0.3  # the fraction of the epochs in which lambda can climb from the ramp to its start
TV_BINS = 50  # histogram bins of the probe's epistemic values (as every TV in the reports)
UPPER_QUANTILE = 0.99  # regression: the histograms run up to this quantile of the teacher's values


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
    guard has set (``high`` until it first cuts), the guard's reference fit and whether lambda has
    ever left 0."""

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
    raised: bool = False  # whether lambda has left 0 (the run is no longer the lambda = 0 run)

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
            self.raised = self.value > 0
            return self.value
        step = min(max(ratio**self.gain, 1 / self.max_down), rise)
        top = self.high if self.ceiling is None else self.ceiling
        value = (self.low if step > 1 else 0.0) if self.value == 0 else self._floored(self.value * step)
        self.value = min(value, top)
        self.raised = self.raised or self.value > 0
        return self.value

    def _floored(self, value: float) -> float:
        """``value``, or 0 below ``low``."""
        return value if value >= self.low else 0.0

    def state(self) -> dict[str, float | None]:
        """What a checkpoint keeps (a resumed run takes the same steps)."""
        reference = self.reference or Fit(math.nan)
        return {"value": self.value, "ceiling": self.ceiling, "reference_kl": reference.kl,
                "reference_agreement": reference.agreement, "started": self.started, "raised": self.raised}

    def restore(self, state: dict[str, float | None]) -> None:
        """Take back a `state`."""
        self.value = float(state["value"])  # type: ignore[arg-type]
        self.ceiling = state.get("ceiling")
        self.started = bool(state.get("started", True))
        self.raised = bool(state.get("raised", self.value > 0))
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
    """A model's epistemic uncertainty on the probe: typical (geometric mean) and the total variation
    between its histogram and the teacher's (NaN without the teacher's values)."""

    typical: float
    tv: float


def off_data(model: nn.Module, probe: ProbeSet, task: str, batch_size: int = 1024) -> OffData:
    """`OffData` of ``model`` on ``probe``, from one pass over its inputs."""
    values = epistemic_values(model, probe.inputs, task, batch_size)
    tv = (math.nan if probe.teacher_values is None
          else total_variation(values.float(), probe.teacher_values.float(), probe.upper, TV_BINS))
    return OffData(geometric_mean(values, probe.floor), tv)


class Candidate(NamedTuple):
    """Weights a run may end with: after ``epoch`` epochs, with the KL of their mean prediction from
    the teacher's on each guard input, their class agreement there (classification) and the TV of
    their epistemic histogram on the probe from the teacher's."""

    epoch: int
    kl: Tensor
    agreement: float | None
    tv: float

    @property
    def fit(self) -> Fit:
        return Fit(float(self.kl.mean()), self.agreement)

    def as_good_as(self, best: Candidate) -> bool:
        """Whether this candidate's fit is as good as ``best``'s, up to the guard sample's noise: its mean
        KL above ``best``'s by at most the standard error of the per-input differences, and its class
        agreement no lower."""
        if self.agreement is not None and best.agreement is not None and self.agreement < best.agreement:
            return False
        difference = self.kl - best.kl
        se = float(difference.std() / math.sqrt(len(difference))) if len(difference) > 1 else 0.0
        return float(difference.mean()) <= se

    def key(self) -> tuple[float, float, float, int]:
        """The order of preference among candidates as good as the best: histogram, KL, agreement."""
        return (self.tv, self.fit.kl, -(self.agreement or 0.0), self.epoch)

    def beats(self, other: Candidate) -> bool:
        """Whether this candidate is at least as good as ``other`` on every measure (and first on ties)."""
        agreement_ok = (self.agreement is None or other.agreement is None
                        or self.agreement >= other.agreement)
        return (self.fit.kl <= other.fit.kl and agreement_ok and self.tv <= other.tv
                and self.key() < other.key())


class Candidates:
    """The candidates a run may still end with, and their weights (CPU copies).

    Each new candidate joins; then the lowest-KL one is the best, and a candidate is dropped when its
    fit is not as good as the best's (`Candidate.as_good_as`) or another kept one beats it on every
    measure (`Candidate.beats`). `chosen` is the kept one whose histogram is closest to the teacher's.
    """

    def __init__(self) -> None:
        self.kept: list[tuple[Candidate, dict[str, Tensor]]] = []

    def add(self, candidate: Candidate, weights: dict[str, Tensor]) -> None:
        """Let ``candidate`` (with ``weights``) join; an epoch already kept is replaced."""
        kept = [(c, w) for c, w in self.kept if c.epoch != candidate.epoch]
        kept.append((candidate, {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}))
        best = min((c for c, _ in kept), key=lambda c: (c.fit.kl, -(c.agreement or 0.0), c.epoch))
        kept = [(c, w) for c, w in kept if c is best or c.as_good_as(best)]
        self.kept = [(c, w) for c, w in kept if not any(d.beats(c) for d, _ in kept)]

    def chosen(self) -> tuple[Candidate, dict[str, Tensor]]:
        """The kept candidate whose epistemic histogram on the probe is closest to the teacher's."""
        if not self.kept:
            raise ValueError("no candidate weights to choose from")
        return min(self.kept, key=lambda kept: kept[0].key())

    def state(self) -> list[dict[str, object]]:
        """What a checkpoint keeps."""
        return [{"epoch": c.epoch, "kl": c.kl, "agreement": c.agreement, "tv": c.tv, "weights": w}
                for c, w in self.kept]

    def restore(self, state: list[dict[str, object]]) -> None:
        """Take back a `state`."""
        self.kept = [(Candidate(int(s["epoch"]), s["kl"], s["agreement"], float(s["tv"])),  # type: ignore[arg-type, call-overload]
                      dict(s["weights"])) for s in state]  # type: ignore[call-overload]


def log_ratio(measured: float, target: float) -> float:
    """How far off the student is, as log(measured / target) (0 = matched)."""
    return math.log(max(measured, 1e-12) / target)
