"""Method presets (SPEC section 3) and experiment configs (SPEC section 6).

An experiment config is one JSON file: data, architecture, ensemble settings, student
settings shared by all methods, and the list of students. A student entry names a
method preset (``ensemble`` is the teacher itself) and may override any setting.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hydraplus.core.losses import LossWeights, check_task
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.data.augment import Augmentation

METHODS = ("hydra+", "hydra", "drop", "gauss", "endd")
BUILTIN_CONFIGS = ("toy-spiral", "toy-regression", "paper-svhn", "paper-cifar10", "cpu-cifar10")


@dataclass(frozen=True)
class StudentSpec:
    """Fully resolved settings of one student."""

    method: str
    heads: int
    alpha: float
    beta: float
    t_mean: float
    t_ind: float
    lam: LambdaSchedule
    lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    kl_coeff: float = 0.0
    samples: int = 1
    augment: Augmentation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.method in ("hydra", "hydra+"):
            return f"{self.method}-{self.heads}"
        return self.method

    @property
    def weights(self) -> LossWeights:
        return LossWeights(self.alpha, self.beta, self.t_mean, self.t_ind)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lam"] = asdict(self.lam)
        out["name"] = self.name
        return out


def available_configs() -> list[str]:
    return list(BUILTIN_CONFIGS)


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """A built-in config by name (``toy-spiral``) or any JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config {path} is not valid JSON: {err}") from err
    else:
        name = str(name_or_path)
        if name not in BUILTIN_CONFIGS:
            raise ValueError(f"unknown config {name!r}; built-in configs: {list(BUILTIN_CONFIGS)}")
        config = json.loads(
            resources.files("hydraplus.experiments").joinpath(f"configs/{name}.json").read_text()
        )
    validate_config(config)
    return config


def validate_config(config: dict[str, Any]) -> None:
    for key in ("name", "data", "task", "arch", "ensemble", "student", "students"):
        if key not in config:
            raise ValueError(f"config is missing the key {key!r}")
    check_task(config["task"])
    members = config["ensemble"].get("members", 0)
    if not isinstance(members, int) or members < 1:
        raise ValueError(f"ensemble.members (N) must be an integer >= 1, got {members!r}")
    Augmentation.from_setting(config["ensemble"].get("augment"), "ensemble.augment")
    for entry in config["students"]:
        resolve_student(config, entry)


def _lambda_for(config: dict[str, Any], heads: int) -> LambdaSchedule:
    """The configured lambda for M heads; the nearest tabulated M when M is not listed."""
    table = config["student"].get("lambda", {})
    if not table:
        raise ValueError("hydra+ needs student.lambda in the config (a value per M)")
    key = min(table, key=lambda m: (abs(int(m) - heads), int(m)))
    return LambdaSchedule(**table[key])


def resolve_student(config: dict[str, Any], entry: dict[str, Any]) -> StudentSpec:
    """Apply the method preset, then the shared student settings, then the entry's overrides."""
    method = entry.get("method")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    base = config["student"]
    n = config["ensemble"]["members"]
    heads = entry.get("heads", n if method in ("hydra", "hydra+") else 1)
    if not isinstance(heads, int) or isinstance(heads, bool):
        raise ValueError(f"heads (M) must be an integer, got {heads!r}")
    if heads < 1:
        raise ValueError(f"number of heads M must be >= 1, got {heads}")
    settings: dict[str, Any] = {
        "alpha": base.get("alpha", 0.9),
        "beta": base.get("beta", 0.5),
        "t_mean": base.get("t_mean", 1.0),
        "t_ind": base.get("t_ind", 1.0),
        "lr": base["lr"],
        "weight_decay": base["weight_decay"],
        "epochs": base["epochs"],
        "batch_size": base.get("batch_size", 256),
        "kl_coeff": 0.0,
        "samples": 1,
    }
    lam = LambdaSchedule(0.0)
    if method == "hydra+":
        lam = _lambda_for(config, heads)
    elif method == "hydra":
        settings.update(alpha=1.0, beta=1.0)
    elif method in ("drop", "gauss"):
        settings.update(beta=1.0, samples=n)
        if method == "gauss":
            settings["kl_coeff"] = base.get("kl_coeff", 0.0)
    else:
        settings.update(alpha=0.0, beta=0.0, samples=n)
    overrides = {k: v for k, v in entry.items() if k not in ("method", "heads")}
    if "lambda" in overrides:
        value = overrides.pop("lambda")
        lam = LambdaSchedule(**value) if isinstance(value, dict) else LambdaSchedule(float(value))
    augment = overrides.pop("augment", base.get("augment"))
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown student settings {sorted(unknown)} for {method}")
    settings.update(overrides)
    _check_settings(method, settings)
    spec = StudentSpec(method=method, heads=heads, lam=lam, **settings,
                       augment=Augmentation.from_setting(augment, f"{method}: setting 'augment'"))
    spec.weights  # noqa: B018  (validates alpha, beta and temperatures)
    return spec


_POSITIVE = ("lr", "t_mean", "t_ind")
_AT_LEAST_ONE = ("epochs", "batch_size", "samples")
_NON_NEGATIVE = ("weight_decay", "kl_coeff")


def _check_settings(method: str, settings: dict[str, Any]) -> None:
    """Types and ranges of a student's settings, each error naming the setting."""
    for key, value in settings.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{method}: setting {key!r} must be a number, got {value!r}")
    for key in _POSITIVE:
        if not settings[key] > 0:
            raise ValueError(f"{method}: setting {key!r} must be > 0, got {settings[key]}")
    for key in _AT_LEAST_ONE:
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"{method}: setting {key!r} must be an integer >= 1, got {settings[key]}")
    for key in _NON_NEGATIVE:
        if settings[key] < 0:
            raise ValueError(f"{method}: setting {key!r} must be >= 0, got {settings[key]}")


def scale_epochs(config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """A copy of the config with every epoch count (and lambda ramp) scaled to ``epochs``."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    out = copy.deepcopy(config)
    for section in ("ensemble", "student"):
        factor = epochs / out[section]["epochs"]
        out[section]["epochs"] = epochs
        for schedule in out[section].get("lambda", {}).values():
            for key in ("start", "end"):
                if key in schedule:
                    schedule[key] = round(schedule[key] * factor)
    return out
