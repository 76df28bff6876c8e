"""Fashion-MNIST as a config's data: the default Debian folder, --data, far OOD images made grey and
28 x 28, and held-out classes as near OOD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _dummies import write_fashion_mnist
from hydraplus.data.images import RawImages, convert_images, load_image_problem, split_classes
from hydraplus.data.sources import SOURCES

DEBIAN = Path(SOURCES["fashion-mnist"].default_path)


@pytest.fixture
def debian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny IDX files standing in for Debian's folder (60 training, 20 test images)."""
    folder = write_fashion_mnist(tmp_path / "debian", train=60, test=20)
    monkeypatch.setattr(SOURCES["fashion-mnist"], "default_path", str(folder))
    return folder


def _rgb_npz(path: Path, n: int = 30, size: int = 32) -> Path:
    rng = np.random.default_rng(1)
    np.savez(path, x_train=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
             y_train=np.arange(n) % 10)
    return path


def test_path_left_out_reads_the_debian_folder_and_its_test_split(debian: Path) -> None:
    problem = load_image_problem({"name": "fashion-mnist", "val_fraction": 0.1})
    assert problem.name == "fashion-mnist"
    assert (len(problem.x_train), len(problem.x_val), len(problem.x_test)) == (54, 6, 20)
    assert problem.x_test_raw.shape == (20, 1, 28, 28) and problem.num_outputs == 10


def test_data_override_beats_the_default(debian: Path, tmp_path: Path) -> None:
    other = write_fashion_mnist(tmp_path / "other", train=30, test=10, seed=3)
    problem = load_image_problem({"name": "fashion-mnist"}, path=other)
    assert len(problem.x_test) == 10 and len(problem.x_train) + len(problem.x_val) == 30


def test_missing_files_say_how_to_install_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SOURCES["fashion-mnist"], "default_path", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError) as info:
        load_image_problem({"name": "fashion-mnist"})
    message = str(info.value)
    assert "absent" in message and "apt install dataset-fashion-mnist" in message and "--data" in message


def test_far_ood_rgb_images_become_grey_28_pixel_images(debian: Path, tmp_path: Path) -> None:
    ood = _rgb_npz(tmp_path / "cifar.npz")
    settings = {"name": "fashion-mnist",
                "ood": {"name": "npz", "path": str(ood), "limit": 12, "grayscale": True, "size": 28}}
    problem = load_image_problem(settings)
    assert problem.x_probe is not None and problem.x_probe.shape == (12, 1, 28, 28)
    assert problem.probe_name == "cifar" and problem.x_probe.dtype == torch.float32
    with pytest.raises(ValueError, match=r"OOD images \(3, 28, 28\) differ.*data.ood.grayscale"):
        load_image_problem({**settings, "ood": {**settings["ood"], "grayscale": False}})
    with pytest.raises(ValueError, match=r"OOD images \(1, 32, 32\) differ.*data.ood.size"):
        load_image_problem({**settings, "ood": {"name": "npz", "path": str(ood), "grayscale": True}})


@pytest.mark.parametrize(
    ("ood", "match"),
    [
        ({"name": "npz", "path": "x.npz", "resize": 28}, r"data.ood: unknown settings \['resize'\]"),
        ({"name": "npz", "path": "x.npz", "grayscale": 1}, "data.ood.grayscale must be true or false"),
        ({"name": "npz", "path": "x.npz", "size": 0}, "data.ood.size must be a positive integer"),
        ({"name": "mnist", "path": "x.npz"}, "data.ood: unknown image source 'mnist'"),
        ({"name": "npz", "path": "missing.npz"}, "data.ood: .*missing.npz.*--ood-data"),
    ],
)
def test_ood_settings_are_checked(debian: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  ood: dict, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    _rgb_npz(tmp_path / "x.npz")
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_image_problem({"name": "fashion-mnist", "ood": ood})


def test_convert_images_uses_luma_and_antialiasing() -> None:
    red = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    red[:, 0] = 255
    grey = convert_images(red, grayscale=True, size=28)
    assert grey.shape == (2, 1, 28, 28) and grey.dtype == torch.uint8
    assert int(grey[0, 0, 5, 5]) == 76  # 0.299 * 255
    checker = (torch.arange(32).view(1, 1, 1, 32) % 2 * 255).expand(1, 1, 32, 32).to(torch.uint8)
    inner = convert_images(checker, size=16)[..., 1:-1].float()
    assert (inner - 127.5).abs().max() < 2  # averaged (antialiased), not sampled
    assert convert_images(grey, grayscale=True) is grey


def test_held_out_classes_are_near_ood(debian: Path) -> None:
    problem = load_image_problem({"name": "fashion-mnist", "holdout_classes": [9, 5, 7]})
    assert problem.num_outputs == 7 and problem.held_out_classes == [5, 7, 9]
    for y in (problem.y_train, problem.y_val, problem.y_test):
        assert int(y.min()) >= 0 and int(y.max()) <= 6
    assert len(problem.x_test) == 14  # 20 test images, labels 0..9 in turn: 6 held out
    assert problem.y_probe is not None and sorted(set(problem.y_probe.tolist())) == [5, 7, 9]
    assert problem.probe_name == "held-out classes 5,7,9"


def test_split_classes_relabels_the_kept_classes_in_order() -> None:
    images = RawImages(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    kept, out = split_classes(images, [1, 4], num_classes=10)
    assert kept.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert kept.x.flatten().tolist() == [0, 2, 3, 5, 6, 7, 8, 9]
    assert out.y.tolist() == [1, 4]


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"holdout_classes": []}, "non-empty list"),
        ({"holdout_classes": [3, 3]}, "distinct labels in 0..9"),
        ({"holdout_classes": [10]}, "distinct labels in 0..9"),
        ({"holdout_classes": list(range(9))}, "fewer than 2 of 10"),
        ({"holdout_classes": [1], "ood": {"name": "npz", "path": "x.npz"}}, "leave out data.ood"),
    ],
)
def test_holdout_errors(debian: Path, settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_image_problem({"name": "fashion-mnist", **settings})


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_the_installed_data_set_has_every_image() -> None:
    problem = load_image_problem({"name": "fashion-mnist", "val_fraction": 0.1})
    assert (len(problem.x_train), len(problem.x_val), len(problem.x_test)) == (54_000, 6_000, 10_000)
    assert problem.x_test_raw.shape[1:] == (1, 28, 28)
