"""One typed experiment config, parsed and checked once.

An experiment config is one JSON file: ``name``, ``task``, ``data``, ``arch``, ``ensemble``
(the teacher), ``student`` (settings every student shares, with the diversity weight lambda per
number of heads M) and ``students`` (one entry per student: a method and any overrides); an
optional ``trainer`` section says on how many devices and nodes they all train.

`parse_config` turns the JSON into frozen dataclasses. Unknown keys are errors that name the
key and its section (with the key probably meant), wrong types name the key, the value and the
type wanted, and every default is written once, as a dataclass field default. Choices that are
legal but probably unintended (an M missing from the lambda table, a lambda ramp that does not
reach its value within the epochs) become `warnings` of the config, which runs print and save.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hydraplus.core.losses import TASKS, LossWeights
from hydraplus.core.precision import PRECISIONS
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.data.augment import Augmentation
from hydraplus.data.sources import allowed_keys, ood_allowed_keys, run_kind

# Lightning strategies whose processes all run the whole program (see hydraplus.engine.distributed);
# spawning ones would train in copies whose results the calling process never sees.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
BUILTIN_CONFIGS = ("toy-spiral", "toy-regression", "paper-svhn", "paper-cifar10", "cpu-cifar10",
                   "cpu-fashion-mnist", "cpu-fashion-mnist-heldout", "gpu-cifar10")


class ConfigError(ValueError):
    """A config that cannot be run: the message names the key and what is wrong."""


class ConfigWarning(UserWarning):
    """A config that runs, but probably not as meant (saved with the run, printed by the CLI)."""


# --- checking plain JSON values against dataclass fields ------------------------------------


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if kind is type(None):
        return "null"
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is str:
        return "a string"
    if typing.get_origin(kind) is dict or kind is dict:
        return "an object"
    return getattr(kind, "__name__", str(kind))


def _matches(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is dict or typing.get_origin(kind) is dict:
        return isinstance(value, dict)
    return True  # nested types are checked by their own parser


def unknown_key_error(key: str, section: str, allowed: typing.Iterable[str]) -> ConfigError:
    """``unknown key 'ensemble.augmnet'; did you mean 'augment'?`` (or the allowed keys)."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
    where = f"{section}.{key}" if section else key
    return ConfigError(f"unknown key {where!r}; {hint}")


def check_keys(data: dict[str, Any], allowed: typing.Iterable[str], section: str) -> None:
    """Every key of ``data`` must be in ``allowed``."""
    allowed = set(allowed)
    for key in data:
        if key not in allowed:
            raise unknown_key_error(key, section, allowed)


def _fields(cls: type, data: Any, section: str, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``cls`` from a JSON object, each key and type checked.

    ``renames`` maps JSON keys to field names (``lambda`` is a Python keyword).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{section} must be an object, got {data!r}")
    renames = renames or {}
    hints = typing.get_type_hints(cls)
    json_key = {f.name: next((k for k, v in renames.items() if v == f.name), f.name)
                for f in dataclasses.fields(cls) if f.init}
    check_keys(data, json_key.values(), section)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = json_key[f.name]
        if key not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{section} is missing the key {key!r}")
            continue
        value = data[key]
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{section}.{key} must be {_type_name(hints[f.name])}, got {value!r}")
        out[f.name] = value
    return out


def _check_range(section: str, key: str, value: float, *, low: float, inclusive: bool = True) -> None:
    if value < low or (not inclusive and value == low):
        sign = ">=" if inclusive else ">"
        where = f"{section}.{key}" if section else key
        raise ConfigError(f"{where} must be {sign} {low:g}, got {value!r}")


def _augmentation(value: Any, where: str) -> Augmentation | None:
    try:
        return Augmentation.from_setting(value, where)
    except ValueError as err:
        raise ConfigError(str(err)) from err


AUTO = "auto"


def _schedule(value: Any, where: str, start_at: float = 1.0) -> LambdaSchedule:
    """A lambda: a number, ``{"value": v, "start": a, "end": b}``, or automatic: ``"auto"`` (starting
    at ``start_at``) or ``{"auto": true, "value": v}``."""
    if value == AUTO:
        raw: dict[str, Any] = {"value": start_at, "auto": True}
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raw = {"value": value}
    elif isinstance(value, dict):
        raw = value
    else:
        raise ConfigError(f"{where} must be a number, 'auto' or {{'value', 'start', 'end'}}, got {value!r}")
    kwargs = _fields(LambdaSchedule, raw, where)
    try:
        return LambdaSchedule(**kwargs)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from err


# --- the sections ---------------------------------------------------------------------------


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


def _data(value: Any) -> DataSettings:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError(f"data must be an object with a 'name', got {value!r}")
    try:
        allowed = allowed_keys(value)
    except ValueError as err:
        raise ConfigError(f"data.name: {err}") from err
    check_keys(value, allowed, "data")
    if "ood" in value:
        if not isinstance(value["ood"], dict) or "name" not in value["ood"]:
            raise ConfigError(f"data.ood must be an object with a 'name', got {value['ood']!r}")
        try:
            ood_allowed = ood_allowed_keys(value["ood"])
        except ValueError as err:
            raise ConfigError(f"data.ood.name: {err}") from err
        check_keys(value["ood"], ood_allowed, "data.ood")
    return DataSettings(value["name"], {k: v for k, v in value.items() if k != "name"})


@dataclass(frozen=True)
class ArchSettings:
    """An architecture by registered name, with the settings of its member, core and head."""

    name: str
    member: dict[str, Any] = field(default_factory=dict)
    core: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)


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


def _ensemble(value: Any) -> EnsembleSettings:
    kwargs = _fields(EnsembleSettings, value, "ensemble")
    settings = EnsembleSettings(**kwargs)
    for key in ("members", "epochs", "batch_size"):
        _check_range("ensemble", key, getattr(settings, key), low=1)
    _check_range("ensemble", "lr", settings.lr, low=0, inclusive=False)
    _check_range("ensemble", "weight_decay", settings.weight_decay, low=0)
    if not 0.0 <= settings.label_smoothing < 1.0:
        raise ConfigError(f"ensemble.label_smoothing must be in [0, 1), got {settings.label_smoothing!r}")
    _augmentation(settings.augment, "ensemble.augment")
    return settings


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


# Settings a student entry may override (the lambda table is replaced by one "lambda").
OVERRIDABLE = ("epochs", "lr", "weight_decay", "batch_size", "alpha", "beta", "t_mean", "t_ind",
               "kl_coeff", "samples", "augment", "patience")
# Names a student may not take: the run folder's and the evaluation's own.
RESERVED_NAMES = ("ensemble", "member", "member-best", "teacher", "cache", "log")


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

    def __post_init__(self) -> None:
        _check_range("", "heads", self.heads, low=1)
        for key in ("epochs", "batch_size", "samples"):
            _check_range("", key, getattr(self, key), low=1)
        if self.patience is not None:
            if not _matches(self.patience, int):
                raise ConfigError(f"patience must be an integer or null, got {self.patience!r}")
            _check_range("", "patience", self.patience, low=1)
        if self.label is not None:
            _check_name(self.label)
        _check_range("", "lr", self.lr, low=0, inclusive=False)
        for key in ("weight_decay", "kl_coeff"):
            _check_range("", key, getattr(self, key), low=0)
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
        from hydraplus.methods import get_method

        return get_method(self.method).student_name(self)

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


def _check_name(name: Any) -> None:
    """A student's own name: it names its run folder and its rows in every report."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be a non-empty string, got {name!r}")
    if name != name.strip() or any(c in name for c in '/\\') or name in (".", ".."):
        raise ConfigError(f"name {name!r} must be usable as a folder name "
                          "(no slashes, no surrounding spaces)")
    if name in RESERVED_NAMES:
        raise ConfigError(f"name {name!r} is taken by hydraplus itself ({', '.join(RESERVED_NAMES)}); "
                          "choose another")


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
            if not _matches(value, int):
                raise ConfigError(f"trainer.{key} must be an integer, got {value!r}")
            _check_range("trainer", key, value, low=1)
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


TOP_KEYS = ("name", "task", "data", "arch", "ensemble", "student", "students")
OPTIONAL_TOP_KEYS = ("precision", "channels_last", "compile", "trainer")


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Check every key, type and range of a JSON config and resolve its students."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a JSON object, got {type(raw).__name__}")
    check_keys(raw, TOP_KEYS + OPTIONAL_TOP_KEYS, "")
    precision = raw.get("precision", "32")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    channels_last = raw.get("channels_last", True)
    if not isinstance(channels_last, bool):
        raise ConfigError(f"channels_last must be true or false, got {channels_last!r}")
    compiled = raw.get("compile", False)
    if not isinstance(compiled, bool):
        raise ConfigError(f"compile must be true or false, got {compiled!r}")
    for key in TOP_KEYS:
        if key not in raw:
            raise ConfigError(f"config is missing the key {key!r}")
    if not isinstance(raw["name"], str):
        raise ConfigError(f"name must be a string, got {raw['name']!r}")
    if raw["task"] not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {raw['task']!r}")
    data = _data(raw["data"])
    arch = ArchSettings(**_fields(ArchSettings, raw["arch"], "arch"))
    _check_arch(arch)
    trainer = TrainerSettings(**_fields(TrainerSettings, raw.get("trainer", {}), "trainer"))
    ensemble = _ensemble(raw["ensemble"])
    if ensemble.label_smoothing and raw["task"] != "classification":
        raise ConfigError(f"ensemble.label_smoothing applies to classification only, got "
                          f"{ensemble.label_smoothing!r} for task {raw['task']!r}")
    trainer.check_batch_size(ensemble.batch_size, "ensemble.batch_size")
    shared = StudentDefaults(**_fields(StudentDefaults, raw["student"], "student", {"lambda": "lam"}))
    for key, value in shared.lam.items():
        if not key.isdigit() or int(key) < 1:
            raise ConfigError(f"student.lambda keys are numbers of heads M (e.g. \"20\"), got {key!r}")
        _schedule(value, f"student.lambda.{key}")
    _augmentation(shared.augment, "student.augment")
    if shared.patience is not None:
        _check_range("student", "patience", shared.patience, low=1)
    if not isinstance(raw["students"], list):
        raise ConfigError(f"students must be a list of entries (empty: train the ensemble only), "
                          f"got {raw['students']!r}")
    found: list[str] = []
    specs = tuple(resolve_student(raw["task"], ensemble.members, shared, entry, i, found)
                  for i, entry in enumerate(raw["students"]))
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"students: {duplicates} appear more than once (each student needs its own "
                          "folder; give each its own \"name\", e.g. \"name\": \"hydra+-8-long\")")
    for spec in specs:
        trainer.check_batch_size(spec.batch_size, f"student {spec.name}: batch_size")
    return ExperimentConfig(raw["name"], raw["task"], data, arch, ensemble, shared, specs,
                            copy.deepcopy(raw), tuple(found), precision, channels_last, compiled, trainer)


def _check_arch(arch: ArchSettings) -> None:
    from hydraplus.models.registry import check_settings

    try:
        check_settings(arch.name, {"member": arch.member, "core": arch.core, "head": arch.head})
    except ValueError as err:
        raise ConfigError(f"arch: {err}") from err


def resolve_student(task: str, members: int, shared: StudentDefaults, entry: Any, index: int = 0,
                    found: list[str] | None = None) -> StudentSpec:
    """One student entry's settings: method defaults, then the shared settings, then the entry's
    own overrides, for a teacher of ``members`` members. Warnings are appended to ``found``."""
    found = [] if found is None else found
    from hydraplus.methods import get_method

    where = f"students[{index}]"
    if not isinstance(entry, dict) or "method" not in entry:
        raise ConfigError(f"{where} must be an object with a 'method', got {entry!r}")
    try:
        method = get_method(entry["method"])
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from err
    where = f"{where} ({entry['method']})"
    check_keys(entry, {"method", "name", "heads", "lambda", *OVERRIDABLE}, where)
    if "heads" in entry and not method.multi_head:
        raise ConfigError(f"{where}: 'heads' applies to multi-head methods only "
                          f"({entry['method']} has one head; its 'samples' default to N)")
    for key in ("heads", "samples", "epochs", "batch_size"):
        if key in entry and not _matches(entry[key], int):
            raise ConfigError(f"{where}.{key} must be an integer, got {entry[key]!r}")
    if entry.get("patience") is not None and not _matches(entry["patience"], int):
        raise ConfigError(f"{where}.patience must be an integer or null, got {entry['patience']!r}")
    for key in ("lr", "weight_decay", "alpha", "beta", "t_mean", "t_ind", "kl_coeff"):
        if key in entry and not _matches(entry[key], float):
            raise ConfigError(f"{where}.{key} must be a number, got {entry[key]!r}")
    heads = entry.get("heads", members if method.multi_head else 1)
    _check_range(where, "heads", heads, low=1)
    settings: dict[str, Any] = {
        "alpha": shared.alpha, "beta": shared.beta, "t_mean": shared.t_mean, "t_ind": shared.t_ind,
        "lr": shared.lr, "weight_decay": shared.weight_decay, "epochs": shared.epochs,
        "batch_size": shared.batch_size, "kl_coeff": 0.0, "samples": 1,
        "augment": shared.augment, "patience": shared.patience,
    }
    settings.update(method.defaults(shared, members))
    settings.update({k: v for k, v in entry.items() if k in OVERRIDABLE})
    settings["augment"] = _augmentation(settings["augment"], f"{where}.augment")
    lam = LambdaSchedule(0.0)
    if entry.get("lambda") == AUTO or (isinstance(entry.get("lambda"), dict) and entry["lambda"].get("auto")):
        if not method.uses_lambda:
            raise ConfigError(f"{where}: an automatic lambda applies to methods with the diversity term "
                              f"only, not {method.name}")
        start = _table_lambda(shared, heads, where, []).value if shared.lam else 1.0
        lam = _schedule(entry["lambda"], f"{where}.lambda", start)
    elif "lambda" in entry:
        lam = _schedule(entry["lambda"], f"{where}.lambda")
    elif method.uses_lambda:
        lam = _table_lambda(shared, heads, where, found)
    try:
        spec = StudentSpec(method=method.name, heads=heads, lam=lam, label=entry.get("name"), **settings)
        method.check_task(task)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from err
    if method.uses_lambda:
        _check_reach(spec, found)
    return spec


def _table_lambda(shared: StudentDefaults, heads: int, where: str, found: list[str]) -> LambdaSchedule:
    """The lambda tabulated for M heads; the nearest tabulated M (with a warning) otherwise."""
    if not shared.lam:
        raise ConfigError(f"{where} needs a diversity weight: student.lambda (a value per M) or "
                          "'lambda' in the entry")
    key = min(shared.lam, key=lambda m: (abs(int(m) - heads), int(m)))
    if int(key) != heads:
        found.append(f"no lambda for M = {heads} in student.lambda (it lists M = "
                     f"{', '.join(sorted(shared.lam, key=int))}); using M = {key}'s "
                     f"{shared.lam[key]}. Set 'lambda' in the entry to choose it")
    return _schedule(shared.lam[key], f"student.lambda.{key}")


def _check_reach(spec: StudentSpec, found: list[str]) -> None:
    """Warn when a Hydra+ ramp does not reach its value within the student's epochs."""
    reach, value = spec.lambda_reach(), spec.lam.value
    if spec.lam.auto or value <= 0 or reach >= value:
        return
    if reach == 0:
        found.append(f"{spec.name}: lambda stays 0 in all {spec.epochs} epochs (ramp {spec.lam.start}"
                     f"-{spec.lam.end}), so this student trains as plain Hydra")
    else:
        found.append(f"{spec.name}: lambda reaches only {reach:.4g} of its {value:g} within "
                     f"{spec.epochs} epochs (ramp ends at epoch {spec.lam.end})")


# --- loading, printing and rescaling --------------------------------------------------------


def available_configs() -> list[str]:
    return list(BUILTIN_CONFIGS)


def builtin_text(name: str) -> str:
    """The JSON text of a built-in config (what `hydraplus configs NAME` prints)."""
    if name not in BUILTIN_CONFIGS:
        close = difflib.get_close_matches(name, BUILTIN_CONFIGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config {name!r}{hint} built-in configs: {list(BUILTIN_CONFIGS)}")
    return resources.files("hydraplus").joinpath(f"configs/{name}.json").read_text()


def read_config(name_or_path: str | Path) -> dict[str, Any]:
    """The JSON of a built-in config by name (``toy-spiral``) or of any file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"config {path} is not valid JSON: {err}") from err
    return json.loads(builtin_text(str(name_or_path)))


def load_config(name_or_path: str | Path, *, epochs: int | None = None, members: int | None = None,
                precision: str | None = None, devices: int | None = None, num_nodes: int | None = None,
                strategy: str | None = None) -> ExperimentConfig:
    """Read a config (see `read_config`), optionally rescale its epochs (`scale_epochs`), change its
    number of members, its precision or its trainer settings (`with_trainer`), and parse it; errors
    name the config."""
    raw = with_trainer(read_config(name_or_path), devices=devices, num_nodes=num_nodes, strategy=strategy)
    if precision is not None:
        raw["precision"] = precision
    try:
        if epochs is not None:
            raw = scale_epochs(raw, epochs)
        if members is not None:
            raw = with_members(raw, members)
        return parse_config(raw)
    except ConfigError as err:
        raise ConfigError(f"config {name_or_path}: {err}") from err


def scale_epochs(raw: dict[str, Any], epochs: int) -> dict[str, Any]:
    """A copy of a JSON config with every epoch count scaled to ``epochs``.

    The ensemble and the shared student section get ``epochs``; a student entry's own
    ``epochs`` and every lambda ramp (in the table and in entries) are scaled by the same
    factor as the section they belong to.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
    out = copy.deepcopy(raw)
    student_factor = epochs / out["student"]["epochs"]
    out["ensemble"]["epochs"] = epochs
    out["student"]["epochs"] = epochs
    for schedule in out["student"].get("lambda", {}).values():
        _scale_ramp(schedule, student_factor)
    for entry in out["students"]:
        factor = student_factor
        if "epochs" in entry:
            new = max(1, round(entry["epochs"] * student_factor))
            factor = new / entry["epochs"]
            entry["epochs"] = new
        if isinstance(entry.get("lambda"), dict):
            _scale_ramp(entry["lambda"], factor)
    return out


def _scale_ramp(schedule: Any, factor: float) -> None:
    if isinstance(schedule, dict):
        for key in ("start", "end"):
            if key in schedule:
                schedule[key] = round(schedule[key] * factor)


def with_members(raw: dict[str, Any], members: int) -> dict[str, Any]:
    """A copy of a JSON config with N members."""
    out = copy.deepcopy(raw)
    out["ensemble"]["members"] = members
    return out


def with_trainer(raw: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A copy of a JSON config whose ``trainer`` section takes the ``settings`` that are not None."""
    out = copy.deepcopy(raw)
    given = {key: value for key, value in settings.items() if value is not None}
    if given:
        section = out.get("trainer", {})
        out["trainer"] = {**section, **given} if isinstance(section, dict) else section
    return out
