"""Domain types every layer shares: a student's settings, the shared student section, the
architecture section, and the names a run folder reserves.

Below `hydraplus.config` (which parses JSON into these types) and `hydraplus.methods` (which build
and train what they describe); imports only `hydraplus.core`. A student's derived name is its
method's rule (`StudentMethod.student_name`): methods hand it over when they register
(`register_namer`), so this module never imports the methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydraplus.core.augment import Augmentation
from hydraplus.core.losses import LossWeights
from hydraplus.core.schedules import LambdaSchedule

# The member reference's rows (beside the ensemble and the students in every evaluation).
MEMBER, MEMBER_BEST = "member", "member-best"
# Names a student may not take: the run folder's and the evaluation's own.
RESERVED_NAMES = ("ensemble", MEMBER, MEMBER_BEST, "teacher", "cache", "log")


class ConfigError(ValueError):
    """A config that cannot be run: the message names the key and what is wrong."""


def is_integer(value: Any) -> bool:
    """An int that is not a bool (JSON ``true`` is not a number of epochs)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_range(section: str, key: str, value: float, *, low: float, inclusive: bool = True) -> None:
    """``section.key must be >= low`` (or ``> low``) as a `ConfigError`."""
    if value < low or (not inclusive and value == low):
        sign = ">=" if inclusive else ">"
        where = f"{section}.{key}" if section else key
        raise ConfigError(f"{where} must be {sign} {low:g}, got {value!r}")


@dataclass(frozen=True)
class ArchSettings:
    """An architecture by registered name, with the settings of its member, core and head."""

    name: str
    member: dict[str, Any] = field(default_factory=dict)
    core: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudentDefaults:
    """The ``student`` section: what every student gets unless its method or entry says otherwise."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int = 256
    alpha: float = 0.9
    beta: float = 0.5
    t_mean: float = 1.0
    t_ind: float = 1.0
    kl_coeff: float = 0.0
    lam: dict[str, Any] = field(default_factory=dict)  # JSON "lambda": M -> schedule
    augment: Any = None
    patience: int | None = None  # early stopping (None: train all epochs)
    core_init: str | None = None  # "member": the core starts from member 0's first layers
    mixup: float | None = None  # Beta(a, a) mixup of the training images (the teacher runs on them)


# How a student's core starts: fresh (None) or from member 0's first layers ("member").
CORE_INITS = (None, "member")

_NAMERS: dict[str, Callable[[StudentSpec], str]] = {}


def register_namer(method: str, namer: Callable[[StudentSpec], str]) -> None:
    """Name the students of ``method`` with ``namer`` (called by the method registry)."""
    _NAMERS[method] = namer


@dataclass(frozen=True)
class StudentSpec:
    """Every setting of one student, resolved: method defaults, shared settings, then overrides."""

    method: str
    heads: int = 1
    alpha: float = StudentDefaults.alpha  # the shared defaults, written once above
    beta: float = StudentDefaults.beta
    t_mean: float = StudentDefaults.t_mean
    t_ind: float = StudentDefaults.t_ind
    lam: LambdaSchedule = field(default_factory=lambda: LambdaSchedule(0.0))
    lr: float = 0.01
    weight_decay: float = 0.0
    epochs: int = 1
    batch_size: int = StudentDefaults.batch_size
    kl_coeff: float = StudentDefaults.kl_coeff
    samples: int = 1
    augment: Augmentation | None = None
    patience: int | None = None  # stop after this many epochs without a better validation KL
    label: str | None = None  # the entry's own "name" (default: derived from method and heads)
    core_init: str | None = None  # "member": the core starts from member 0's weights (else fresh)
    mixup: float | None = None  # mixup's Beta concentration (None: off)

    def __post_init__(self) -> None:
        if self.mixup is not None and (isinstance(self.mixup, bool) or not isinstance(self.mixup, int | float)
                                       or self.mixup <= 0):
            raise ConfigError(f"mixup must be a number > 0 (Beta(a, a)) or null, got {self.mixup!r}")
        if self.core_init not in CORE_INITS:
            raise ConfigError(f"core_init must be one of {CORE_INITS}, got {self.core_init!r}")
        check_range("", "heads", self.heads, low=1)
        for key in ("epochs", "batch_size", "samples"):
            check_range("", key, getattr(self, key), low=1)
        if self.patience is not None:
            if not is_integer(self.patience):
                raise ConfigError(f"patience must be an integer or null, got {self.patience!r}")
            check_range("", "patience", self.patience, low=1)
        if self.label is not None:
            check_name(self.label)
        check_range("", "lr", self.lr, low=0, inclusive=False)
        for key in ("weight_decay", "kl_coeff"):
            check_range("", key, getattr(self, key), low=0)
        try:
            self.weights  # noqa: B018  (checks alpha, beta and the temperatures)
        except ValueError as err:
            raise ConfigError(str(err)) from err

    @property
    def name(self) -> str:
        """The entry's own name, else ``hydra+-20`` for multi-head methods and the method's name
        for the others."""
        if self.label is not None:
            return self.label
        if self.method not in _NAMERS:
            raise ValueError(f"no student method {self.method!r} is registered (import hydraplus.methods); "
                             f"registered: {sorted(_NAMERS)}")
        return _NAMERS[self.method](self)

    @property
    def weights(self) -> LossWeights:
        return LossWeights(self.alpha, self.beta, self.t_mean, self.t_ind)

    def lambda_reach(self) -> float:
        """The largest lambda any training epoch uses."""
        return max(self.lam(epoch) for epoch in range(self.epochs))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lam"] = dataclasses.asdict(self.lam)
        out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> StudentSpec:
        """The spec that `to_dict` gave ``saved`` (its derived ``name`` is ignored)."""
        values = {f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved}
        values["lam"] = LambdaSchedule(**saved["lam"])
        values["augment"] = None if saved.get("augment") is None else Augmentation(**saved["augment"])
        return cls(**values)


def check_name(name: Any) -> None:
    """A student's own name: it names its run folder and its rows in every report."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be a non-empty string, got {name!r}")
    if name != name.strip() or any(c in name for c in '/\\') or name in (".", ".."):
        raise ConfigError(f"name {name!r} must be usable as a folder name "
                          "(no slashes, no surrounding spaces)")
    if name in RESERVED_NAMES:
        raise ConfigError(f"name {name!r} is taken by hydraplus itself ({', '.join(RESERVED_NAMES)}); "
                          "choose another")
