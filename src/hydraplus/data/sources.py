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
HOLDOUT_KEY = "holdout_classes"  # classes left out of training; their test images become the OOD set
SOURCE_KEYS: dict[str, frozenset[str]] = {
    "npz": frozenset(),
    "cifar10": frozenset({"download", "verify"}),
    "svhn": frozenset({"download", "verify"}),
    "fashion-mnist": frozenset({"size", "channels"}),
}
TOY_KEYS = frozenset({"name", "seed"})
# Where a source's files are when its ``path`` is left out: Debian's ``dataset-fashion-mnist``.
DEFAULT_PATHS: dict[str, str] = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
INSTALL_HINTS: dict[str, str] = {"fashion-mnist": "apt install dataset-fashion-mnist"}
# An OOD source: which images, how many, and how to bring them to the main data's shape.
OOD_KEYS = frozenset({"name", "path", "seed", "limit", "grayscale", "size"})


def run_kind(data_name: str) -> str:
    """``toy`` for the built-in toy problems, ``image`` for image sources."""
    if data_name in TOY_PROBLEMS:
        return "toy"
    if data_name in IMAGE_SOURCES:
        return "image"
    raise ValueError(f"unknown data set {data_name!r}; choose a toy problem {list(TOY_PROBLEMS)} "
                     f"or an image source {list(IMAGE_SOURCES)}")


def allowed_keys(settings: dict[str, Any]) -> frozenset[str]:
    """The keys a data section may hold, by its ``name``."""
    name = settings.get("name")
    if run_kind(str(name)) == "toy":
        return TOY_KEYS
    return SPLIT_KEYS | SOURCE_KEYS[str(name)] | {"name", "path", "ood", HOLDOUT_KEY}


def ood_allowed_keys(settings: dict[str, Any]) -> frozenset[str]:
    """The keys a data section's ``ood`` part may hold, by its ``name`` (an image source)."""
    name = str(settings.get("name"))
    if name not in IMAGE_SOURCES:
        raise ValueError(f"unknown OOD image source {name!r}; choose one of {list(IMAGE_SOURCES)}")
    return OOD_KEYS | SOURCE_KEYS[name]
