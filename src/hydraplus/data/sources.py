"""Data sets by name: each registered where its reader is defined, with its kind (toy or image), its
number of classes, how its inputs are normalised, and the settings its reader takes.

A new data set is one reader plus one `register_source` call beside it; configs, the CLI and the
run's number of classes find it here. Importing any ``hydraplus.data`` module registers the
built-in sources (the package imports its readers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("toy", "image")
SPLIT_KEYS = frozenset({"seed", "val_fraction", "test_fraction", "limit", "test_limit"})
HOLDOUT_KEY = "holdout_classes"  # classes left out of training; their test images become the OOD set
TOY_KEYS = frozenset({"name", "seed"})
# An OOD source: which images, how many, and how to bring them to the main data's shape.
OOD_KEYS = frozenset({"name", "path", "seed", "limit", "grayscale", "size"})


@dataclass
class Source:
    """One data set.

    ``read`` makes it: for a toy problem ``read(seed)`` gives the problem; for an image source
    ``read(path, splits, **options)`` gives the asked-for raw ``train``/``test`` splits (an .npz may
    lack ``test``), ``options`` being its own settings ``keys``. ``classes`` is the number of
    classes (None: regression). ``normalization`` makes an image source's per-channel statistics
    from its raw training images (None for toy problems, whose features are used as drawn).
    ``default_path`` is read when a config leaves ``path`` out; ``install_hint`` says how to get
    the files there.
    """

    name: str
    kind: str
    classes: int | None
    read: Callable[..., Any]
    normalization: Callable[[Any], Any] | None = None
    keys: frozenset[str] = frozenset()
    default_path: str | None = None
    install_hint: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"source {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "image" and self.normalization is None:
            raise ValueError(f"image source {self.name!r} needs a normalization")


SOURCES: dict[str, Source] = {}


def register_source(source: Source) -> Source:
    """Make ``source`` available to configs by its name."""
    if source.name in SOURCES:
        raise ValueError(f"a data source named {source.name!r} is already registered")
    SOURCES[source.name] = source
    return source


def source_names(kind: str) -> list[str]:
    """The registered sources of one kind, in registration order."""
    return [name for name, source in SOURCES.items() if source.kind == kind]


def get_source(name: Any) -> Source:
    """The registered source ``name``; a clear error naming the choices otherwise."""
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}; choose a toy problem {source_names('toy')} "
                         f"or an image source {source_names('image')}")
    return SOURCES[name]


def run_kind(data_name: str) -> str:
    """``toy`` for the toy problems, ``image`` for image sources."""
    return get_source(data_name).kind


def allowed_keys(settings: dict[str, Any]) -> frozenset[str]:
    """The keys a data section may hold, by its ``name``."""
    source = get_source(str(settings.get("name")))
    if source.kind == "toy":
        return TOY_KEYS
    return SPLIT_KEYS | source.keys | {"name", "path", "ood", HOLDOUT_KEY}


def ood_allowed_keys(settings: dict[str, Any]) -> frozenset[str]:
    """The keys a data section's ``ood`` part may hold, by its ``name`` (an image source)."""
    name = str(settings.get("name"))
    if name not in SOURCES or SOURCES[name].kind != "image":
        raise ValueError(f"unknown OOD image source {name!r}; choose one of {source_names('image')}")
    return OOD_KEYS | SOURCES[name].keys
