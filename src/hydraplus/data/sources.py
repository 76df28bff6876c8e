"""Which data sets exist, which kind of run each makes, and the settings each reader takes.

Kept free of the readers themselves (no torchvision import), so configs can be checked and run
kinds decided before any data is read.
"""

from __future__ import annotations

from typing import Any

TOY_PROBLEMS = ("spiral", "regression")
IMAGE_SOURCES = ("npz", "cifar10", "svhn", "fashion-mnist")
KINDS = ("toy", "image")

SPLIT_KEYS = frozenset({"seed", "val_fraction", "test_fraction", "limit", "test_limit"})
SOURCE_KEYS: dict[str, frozenset[str]] = {
    "npz": frozenset(),
    "cifar10": frozenset({"download", "verify"}),
    "svhn": frozenset({"download", "verify"}),
    "fashion-mnist": frozenset({"size", "channels"}),
}
TOY_KEYS = frozenset({"name", "seed"})


def run_kind(data_name: str) -> str:
    """``toy`` for the built-in toy problems, ``image`` for image sources."""
    if data_name in TOY_PROBLEMS:
        return "toy"
    if data_name in IMAGE_SOURCES:
        return "image"
    raise ValueError(f"unknown data set {data_name!r}; choose a toy problem {list(TOY_PROBLEMS)} "
                     f"or an image source {list(IMAGE_SOURCES)}")


def allowed_keys(settings: dict[str, Any]) -> frozenset[str]:
    """The keys a data section (or its ``ood`` part) may hold, by its ``name``."""
    name = settings.get("name")
    if run_kind(str(name)) == "toy":
        return TOY_KEYS
    return SPLIT_KEYS | SOURCE_KEYS[str(name)] | {"name", "path", "ood"}
