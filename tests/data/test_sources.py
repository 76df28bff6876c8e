"""Data sources by registration: a new one declares its classes and normalisation, nothing else changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.config import ConfigError, parse_config
from hydraplus.data.images import Normalization, RawImages, load_image_problem
from hydraplus.data.sources import SOURCES, Source, get_source, register_source, run_kind, source_names

FIXED = Normalization((0.5,), (0.25,))


def _five_classes(path: str | Path, splits: Any) -> dict[str, RawImages]:
    """Grey 4 x 4 images of five classes (image i has label i % 5), 40 training and 10 test."""
    g = torch.Generator().manual_seed(0)
    make = lambda n: RawImages(torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g),  # noqa: E731
                               torch.arange(n) % 5)
    return {split: make(40 if split == "train" else 10) for split in splits}


@pytest.fixture
def five() -> Source:
    """A registered five-class image source with fixed statistics (removed afterwards)."""
    source = register_source(Source("test-five", "image", classes=5, read=_five_classes,
                                     normalization=lambda images: FIXED))
    yield source
    del SOURCES["test-five"]


def test_the_built_in_sources_declare_their_classes_in_listing_order() -> None:
    assert source_names("image") == ["npz", "cifar10", "svhn", "fashion-mnist"]
    assert source_names("toy") == ["spiral", "regression"]
    assert [get_source(n).classes for n in ("cifar10", "svhn", "fashion-mnist", "spiral", "regression")] \
        == [10, 10, 10, 3, None]


def test_a_registered_source_gives_its_classes_and_normalisation(five: Source) -> None:
    assert run_kind("test-five") == "image"
    problem = load_image_problem({"name": "test-five", "path": "unused"})
    assert problem.num_outputs == 5 and problem.normalization == FIXED
    held = load_image_problem({"name": "test-five", "path": "unused", "holdout_classes": [4]})
    assert held.num_outputs == 4 and set(held.y_probe.tolist()) == {4}
    with pytest.raises(ValueError, match=r"holdout_classes must be distinct labels in 0\.\.4, got \[5\]"):
        load_image_problem({"name": "test-five", "path": "unused", "holdout_classes": [5]})


def test_configs_know_a_registered_source_and_refuse_an_unknown_one(five: Source) -> None:
    raw = toy_config()
    assert parse_config({**raw, "data": {"name": "test-five", "path": "x"}}).kind == "image"
    with pytest.raises(ConfigError, match=r"unknown data set 'test-six'"):
        parse_config({**raw, "data": {"name": "test-six"}})


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_source(get_source("cifar10"))
