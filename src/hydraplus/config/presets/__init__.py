"""The built-in configs: one JSON file per preset in this folder, found by scanning it (a new
preset is one new file)."""

from __future__ import annotations

import difflib
from importlib import resources

from hydraplus.spec import ConfigError


def available_configs() -> list[str]:
    """The presets' names (their files' stems), sorted."""
    return sorted(entry.name.removesuffix(".json") for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".json"))


def builtin_text(name: str) -> str:
    """The JSON text of a preset (what `hydraplus configs NAME` prints)."""
    names = available_configs()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config {name!r}{hint} built-in configs: {names}")
    return resources.files(__name__).joinpath(f"{name}.json").read_text()
