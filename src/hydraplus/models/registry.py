"""Build members, cores and heads by architecture name from plain (JSON) settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from hydraplus.models.lenet import lenet_core, lenet_head, lenet_member
from hydraplus.models.mlp import mlp
from hydraplus.models.resnet import resnet_core, resnet_head, resnet_member

PARTS = ("member", "core", "head")

ARCHITECTURES: dict[str, dict[str, Callable[..., nn.Module]]] = {
    "mlp": {
        "member": lambda sizes: mlp(sizes),
        "core": lambda sizes: mlp(sizes, final_activation=True),
        "head": lambda sizes: mlp(sizes),
    },
    "lenet": {"member": lenet_member, "core": lenet_core, "head": lenet_head},
    "resnet": {"member": resnet_member, "core": resnet_core, "head": resnet_head},
}


def build(arch: dict[str, Any], part: str) -> nn.Module:
    """``arch = {"name": "mlp", "member": {...}, "core": {...}, "head": {...}}``."""
    name = arch.get("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    try:
        return ARCHITECTURES[name][part](**arch.get(part, {}))
    except TypeError as err:
        raise ValueError(f"bad settings for {name} {part}: {arch.get(part)} ({err})") from err
