"""Architectures by name: factories of a member, a student core and a student head.

Configs name an architecture (``"arch": {"name": "lenet", "member": {...}, "core": {...},
"head": {...}}``); the part settings are the factories' keyword arguments, checked against
their signatures when a config is parsed. Each architecture registers itself beside its factories
(`register_architecture`); the ``hydraplus.models`` package imports every module in it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from hydraplus.spec import ArchSettings

PARTS = ("member", "core", "head")

ARCHITECTURES: dict[str, dict[str, Callable[..., nn.Module]]] = {}


def register_architecture(name: str, *, member: Callable[..., nn.Module], core: Callable[..., nn.Module],
                          head: Callable[..., nn.Module]) -> None:
    """Make an architecture available to configs by ``name`` (called beside its factories)."""
    if name in ARCHITECTURES:
        raise ValueError(f"an architecture named {name!r} is already registered")
    ARCHITECTURES[name] = {"member": member, "core": core, "head": head}


def _factories(name: str) -> dict[str, Callable[..., nn.Module]]:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def check_settings(name: str, parts: dict[str, dict[str, Any]]) -> None:
    """Every part's settings must be arguments its factory takes (names and required ones)."""
    factories = _factories(name)
    for part, settings in parts.items():
        try:
            inspect.signature(factories[part]).bind(**settings)
        except TypeError as err:
            raise ValueError(f"bad settings for {name} {part}: {settings} ({err})") from err


def build(arch: ArchSettings, part: str) -> nn.Module:
    """A fresh ``member``, ``core`` or ``head`` of the config's architecture."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    settings = getattr(arch, part)
    try:
        return _factories(arch.name)[part](**settings)
    except TypeError as err:
        raise ValueError(f"bad settings for {arch.name} {part}: {settings} ({err})") from err
