"""The typed sections of an experiment config (frozen dataclasses; every default written once).

The student's own types (`StudentSpec`, `StudentDefaults`, `ArchSettings`) live in
`hydraplus.spec`, below the methods that use them; `hydraplus.config.parse` fills these from JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydraplus.choices import STRATEGIES
from hydraplus.core.augment import Augmentation
from hydraplus.data.sources import run_kind
from hydraplus.spec import ArchSettings, ConfigError, StudentDefaults, StudentSpec, check_range, is_integer

TOP_KEYS = ("name", "task", "data", "arch", "ensemble", "student", "students")
OPTIONAL_TOP_KEYS = ("precision", "channels_last", "compile", "trainer")
# Settings a student entry may override (the lambda table is replaced by one "lambda").
OVERRIDABLE = ("epochs", "lr", "weight_decay", "batch_size", "alpha", "beta", "t_mean", "t_ind",
               "kl_coeff", "samples", "augment", "patience", "core_init", "mixup")


class ConfigWarning(UserWarning):
    """A config that runs, but probably not as meant (saved with the run, printed by the CLI)."""


@dataclass(frozen=True)
class DataSettings:
    """Which data set (``name``) and its reader's settings; ``kind`` is toy or image."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return run_kind(self.name)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class EnsembleSettings:
    """The teacher: N members trained independently (own initialisation and data order)."""

    members: int
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int = 256
    augment: Any = None  # parsed into an Augmentation (or None) by `augmentation`
    label_smoothing: float = 0.0  # members' cross-entropy targets: (1 - s) one-hot + s / C

    @property
    def augmentation(self) -> Augmentation | None:
        return Augmentation.from_setting(self.augment, "ensemble.augment")


@dataclass(frozen=True)
class TrainerSettings:
    """The optional ``trainer`` section: the ensemble and every student train on ``devices`` per
    node × ``num_nodes`` nodes, one process each (the world size), with ``strategy``: ``auto`` (one
    device's own, DDP on several), ``ddp`` or ``ddp_find_unused_parameters_true``. Batch sizes stay
    the global ones, so each must divide by the world size."""

    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        for key in ("devices", "num_nodes"):
            value = getattr(self, key)
            if not is_integer(value):
                raise ConfigError(f"trainer.{key} must be an integer, got {value!r}")
            check_range("trainer", key, value, low=1)
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"trainer.strategy must be one of {STRATEGIES}, got {self.strategy!r}")

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    def check_batch_size(self, batch_size: int, where: str) -> None:
        """Refuse a global batch size that does not split evenly over the processes."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"{where} {batch_size} does not divide over world size {self.world_size} (devices "
                f"{self.devices} × nodes {self.num_nodes}): each process takes batch size / world size "
                f"examples of every batch; choose a batch size divisible by {self.world_size}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A parsed config: typed sections, resolved students and the warnings found.

    ``raw`` is the JSON as given (saved with each run, and compared on ``--resume``).
    """

    name: str
    task: str
    data: DataSettings
    arch: ArchSettings
    ensemble: EnsembleSettings
    student: StudentDefaults
    students: tuple[StudentSpec, ...]
    raw: dict[str, Any]
    warnings: tuple[str, ...] = ()
    precision: str = "32"
    channels_last: bool = True
    compile: bool = False
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    @property
    def kind(self) -> str:
        """``toy`` or ``image``: decided by the data set, saved in every run's config.json."""
        return self.data.kind
