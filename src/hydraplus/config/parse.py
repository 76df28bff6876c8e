"""Parsing a JSON experiment config into its typed sections, every key, type and range checked.

Unknown keys are errors that name the key and its section (with the key probably meant), wrong
types name the key, the value and the type wanted. Choices that are legal but probably unintended
(an M missing from the lambda table, a lambda ramp that does not reach its value within the
epochs) become `warnings` of the config, which runs print and save. Methods, architectures and
data sources are looked up in their registries, so a new one needs no change here.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from typing import Any

from hydraplus.config.schema import (
    OPTIONAL_TOP_KEYS,
    OVERRIDABLE,
    TOP_KEYS,
    DataSettings,
    EnsembleSettings,
    ExperimentConfig,
    TrainerSettings,
)
from hydraplus.core.augment import Augmentation
from hydraplus.core.losses import TASKS
from hydraplus.core.precision import PRECISIONS
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.data.sources import allowed_keys, ood_allowed_keys
from hydraplus.methods import get_method
from hydraplus.models.registry import check_settings
from hydraplus.spec import ArchSettings, ConfigError, StudentDefaults, StudentSpec, check_range

AUTO = "auto"


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


def _augmentation(value: Any, where: str) -> Augmentation | None:
    try:
        return Augmentation.from_setting(value, where)
    except ValueError as err:
        raise ConfigError(str(err)) from err



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


def _ensemble(value: Any) -> EnsembleSettings:
    kwargs = _fields(EnsembleSettings, value, "ensemble")
    settings = EnsembleSettings(**kwargs)
    for key in ("members", "epochs", "batch_size"):
        check_range("ensemble", key, getattr(settings, key), low=1)
    check_range("ensemble", "lr", settings.lr, low=0, inclusive=False)
    check_range("ensemble", "weight_decay", settings.weight_decay, low=0)
    if not 0.0 <= settings.label_smoothing < 1.0:
        raise ConfigError(f"ensemble.label_smoothing must be in [0, 1), got {settings.label_smoothing!r}")
    _augmentation(settings.augment, "ensemble.augment")
    return settings


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
        check_range("student", "patience", shared.patience, low=1)
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
    try:
        check_settings(arch.name, {"member": arch.member, "core": arch.core, "head": arch.head})
    except ValueError as err:
        raise ConfigError(f"arch: {err}") from err


def resolve_student(task: str, members: int, shared: StudentDefaults, entry: Any, index: int = 0,
                    found: list[str] | None = None) -> StudentSpec:
    """One student entry's settings: method defaults, then the shared settings, then the entry's
    own overrides, for a teacher of ``members`` members. Warnings are appended to ``found``."""
    found = [] if found is None else found
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
    check_range(where, "heads", heads, low=1)
    settings: dict[str, Any] = {
        "alpha": shared.alpha, "beta": shared.beta, "t_mean": shared.t_mean, "t_ind": shared.t_ind,
        "lr": shared.lr, "weight_decay": shared.weight_decay, "epochs": shared.epochs,
        "batch_size": shared.batch_size, "kl_coeff": 0.0, "samples": 1,
        "augment": shared.augment, "patience": shared.patience, "core_init": shared.core_init,
        "mixup": shared.mixup,
    }
    settings.update(method.defaults(shared, members))
    settings.update({k: v for k, v in entry.items() if k in OVERRIDABLE})
    settings["augment"] = _augmentation(settings["augment"], f"{where}.augment")
    if settings["mixup"] is not None and task != "classification":
        raise ConfigError(f"{where}.mixup applies to classification only (it mixes the labels)")
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
