"""Reading a config (a preset by name or any JSON file) and rescaling it before parsing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hydraplus.config.parse import parse_config
from hydraplus.config.presets import builtin_text
from hydraplus.config.schema import ExperimentConfig
from hydraplus.spec import ConfigError


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
