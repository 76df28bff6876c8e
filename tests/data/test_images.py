"""Image loaders: .npz, torchvision CIFAR-10 / SVHN layouts, Fashion-MNIST IDX, splits, errors."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hydraplus.data.images import (
    ImageProblem,
    Normalization,
    RawImages,
    load_image_problem,
    make_image_problem,
    read_cifar10,
    read_fashion_mnist,
    read_idx,
    read_npz,
    read_svhn,
)

# The project's shared data folder sits beside the checkout (../shared/data); override with
# HYDRAPLUS_SHARED_DATA. Tests that need it skip when it is absent.
SHARED_DATA = Path(
    os.environ.get("HYDRAPLUS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
MINI = SHARED_DATA / "cifar10_mini.npz"


def _indexed_images(n: int, size: int = 4, channels: int = 3) -> np.ndarray:
    """NHWC uint8 images whose every pixel holds the image's index (so splits can be traced)."""
    ids = np.arange(n, dtype=np.uint8)[:, None, None, None]
    return np.broadcast_to(ids, (n, size, size, channels)).copy()


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _ids(x: torch.Tensor) -> set[int]:
    return set(x[:, 0, 0, 0].round().long().tolist())


# ---------------------------------------------------------------- .npz


def test_cifar10_mini_npz() -> None:
    if not MINI.is_file():
        pytest.skip(f"{MINI} is not available")
    problem = load_image_problem({"name": "npz", "path": str(MINI)}, seed=0)
    assert isinstance(problem, ImageProblem)
    assert (problem.name, problem.task, problem.num_outputs, problem.in_features) == (
        "cifar10_mini", "classification", 10, 3)
    assert problem.x_train.shape == (4500, 3, 32, 32) and problem.x_train.dtype == torch.float32
    assert problem.x_val.shape == (500, 3, 32, 32) and problem.x_test.shape == (1000, 3, 32, 32)
    assert problem.y_train.dtype == torch.long and int(problem.y_train.max()) == 9
    # normalised with the training split's own statistics
    torch.testing.assert_close(problem.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(problem.x_train.std((0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    with np.load(MINI) as d:
        x_test, y_test = d["x_test"], d["y_test"]
    # the official test split is kept whole and in order; the raw copy is uint8 NCHW
    assert torch.equal(problem.x_test_raw, torch.from_numpy(x_test.transpose(0, 3, 1, 2)))
    assert torch.equal(problem.y_test, torch.from_numpy(y_test))
    torch.testing.assert_close(problem.normalize(problem.x_test_raw), problem.x_test)


def test_npz_without_test_split_carves_disjoint_seeded_splits(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", x_train=_indexed_images(100), y_train=np.arange(100) % 10)
    problem = load_image_problem({"name": "npz", "path": str(path)}, seed=3)
    assert (len(problem.x_train), len(problem.x_val), len(problem.x_test)) == (81, 9, 10)
    raw = make_image_problem("d", read_npz(path)["train"], seed=3,
                             normalization=Normalization((0.0,) * 3, (1 / 255,) * 3), num_classes=10)
    train, val, test = _ids(raw.x_train), _ids(raw.x_val), _ids(raw.x_test)
    assert train | val | test == set(range(100)) and len(train) + len(val) + len(test) == 100
    assert test == _ids(problem.x_test_raw)
    assert torch.equal(raw.y_train, raw.x_train[:, 0, 0, 0].round().long() % 10)
    again = load_image_problem({"name": "npz", "path": str(path)}, seed=3)
    other = load_image_problem({"name": "npz", "path": str(path)}, seed=4)
    assert torch.equal(again.x_train, problem.x_train)
    assert _ids(other.x_test_raw) != test


def test_limit_and_test_limit(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", x_train=_indexed_images(200), y_train=np.zeros(200, dtype=np.int64),
                      x_test=_indexed_images(50), y_test=np.ones(50, dtype=np.int64))
    problem = load_image_problem({"name": "npz", "path": str(path), "limit": 40, "test_limit": 7,
                                  "val_fraction": 0.25})
    assert (len(problem.x_train), len(problem.x_val), len(problem.x_test)) == (30, 10, 7)
    assert _ids(problem.x_test_raw) <= set(range(50))


def test_normalization_constants_and_float_input() -> None:
    norm = Normalization((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1)
    expected = torch.tensor([-1.0, 3.0, 0.2]).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm(x.float() / 255), expected)
    stats = Normalization.from_images(torch.tensor([[[[0, 255]], [[51, 51]], [[0, 0]]]], dtype=torch.uint8))
    assert stats.mean == pytest.approx((0.5, 0.2, 0.0)) and stats.std == pytest.approx((0.5, 1.0, 1.0))
    problem = make_image_problem("d", RawImages(torch.from_numpy(_indexed_images(20).transpose(0, 3, 1, 2)),
                                                torch.zeros(20, dtype=torch.long)), normalization=norm,
                                 num_classes=10)
    assert problem.normalization is norm


# ------------------------------------------------------- torchvision layouts


def test_svhn_mat_layout_and_label_10_is_digit_0(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    x = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [9], [10], [5]], dtype=np.uint8)
    scipy_io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    raw = read_svhn(tmp_path, split="test", verify=False)
    assert raw.x.shape == (5, 3, 32, 32) and raw.x.dtype == torch.uint8
    assert raw.y.tolist() == [0, 1, 9, 0, 5]
    assert torch.equal(raw.x[2], torch.from_numpy(x[..., 2].transpose(2, 0, 1).copy()))
    with pytest.raises(ValueError, match=r"failed torchvision's check.*verify=False"):
        read_svhn(tmp_path, split="test")


def _write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # rows: R plane, G plane, B plane
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}))


def test_cifar10_batches_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
        _write_cifar_batch(folder / name, batches[name], [len(batches) % 10, 3])
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    train = read_cifar10(tmp_path, train=True, verify=False)
    test = read_cifar10(tmp_path, train=False, verify=False)
    assert train.x.shape == (10, 3, 32, 32) and test.x.shape == (2, 3, 32, 32)
    assert train.y.tolist() == [1, 3, 2, 3, 3, 3, 4, 3, 5, 3] and test.y.tolist() == [6, 3]
    assert torch.equal(test.x[1], torch.from_numpy(batches["test_batch"][1].transpose(2, 0, 1).copy()))
    with pytest.raises(ValueError, match="failed torchvision's check"):
        read_cifar10(tmp_path)
    problem = load_image_problem({"name": "cifar10", "path": str(tmp_path), "verify": False,
                                  "val_fraction": 0.2})
    assert (len(problem.x_train), len(problem.x_val), len(problem.x_test)) == (8, 2, 2)


def test_missing_torchvision_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*data_batch_1.*download=True"):
        read_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train_32x32\.mat"):
        read_svhn(tmp_path, split="train")
    with pytest.raises(ValueError, match="SVHN split"):
        read_svhn(tmp_path, split="valid")


# ------------------------------------------------------------ IDX files


def _idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        raw = _idx_bytes(array)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 9, 5], dtype=np.uint8)
    _write_fashion(tmp_path, images, labels, "t10k", gz)
    raw = read_fashion_mnist(tmp_path, train=False)
    assert raw.x.shape == (6, 1, 28, 28) and torch.equal(raw.x[:, 0], torch.from_numpy(images))
    assert raw.y.tolist() == labels.tolist() and raw.y.dtype == torch.long
    big = read_fashion_mnist(tmp_path, train=False, size=32, channels=3)
    assert big.x.shape == (6, 3, 32, 32) and big.x.dtype == torch.uint8
    assert torch.equal(big.x[:, 0], big.x[:, 2])


def test_fashion_mnist_torchvision_folder(tmp_path: Path) -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    _write_fashion(tmp_path / "FashionMNIST" / "raw", images, np.array([4, 7]), "train", gz=True)
    assert read_fashion_mnist(tmp_path).y.tolist() == [4, 7]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x00\x00\x08", "not an IDX file"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
        (_idx_bytes(np.zeros(3), dtype_code=0x0D), "not unsigned byte"),
        (_idx_bytes(np.zeros((2, 3)))[:-1], r"needs 6 data bytes, the file has 5"),
        (_idx_bytes(np.zeros(4)) + b"\x00", r"needs 4 data bytes, the file has 5"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
        (b"\x1f\x8b\x08garbage", "corrupt gzip"),
    ],
)
def test_idx_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_fashion_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        read_fashion_mnist(tmp_path)
    _write_fashion(tmp_path, np.zeros((3, 28, 28)), np.array([1, 2]), "train", gz=False)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        read_fashion_mnist(tmp_path)
    _write_fashion(tmp_path, np.zeros((2, 28, 28)), np.array([1, 12]), "train", gz=False)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9, got 1\.\.12"):
        read_fashion_mnist(tmp_path)
    _write_fashion(tmp_path, np.zeros(2), np.array([1, 2]), "train", gz=False)
    with pytest.raises(ValueError, match=r"expected images \[N, H, W\]"):
        read_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        read_fashion_mnist(tmp_path, channels=2)


# --------------------------------------------------------------- errors

GOOD_X, GOOD_Y = _indexed_images(10), np.arange(10) % 10


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"y_train": GOOD_Y}, "missing array 'x_train'"),
        ({"x_train": GOOD_X}, "missing array 'y_train'"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y, "x_test": GOOD_X}, "both be present"),
        ({"x_train": GOOD_X.astype(np.float32), "y_train": GOOD_Y}, "must be a uint8 array, got float32"),
        ({"x_train": GOOD_X[..., 0], "y_train": GOOD_Y}, r"\[N, H, W, C\].*got shape \(10, 4, 4\)"),
        ({"x_train": np.zeros((10, 4, 4, 2), np.uint8), "y_train": GOOD_Y}, "1 or 3 channels"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y + 1}, r"labels must be in 0\.\.9, got 1\.\.10"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y - 1}, r"labels must be in 0\.\.9, got -1\.\.8"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y.astype(np.float64)}, "1-D integer array"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y[:, None]}, "1-D integer array"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y[:9]}, "10 images but 9 labels"),
        ({"x_train": GOOD_X[:0], "y_train": GOOD_Y[:0]}, r"empty \(0 images\)"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y, "x_test": GOOD_X[:, :2], "y_test": GOOD_Y},
         r"bad: test images \(3, 2, 4\) differ from training images \(3, 4, 4\)"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_image_problem({"name": "npz", "path": str(path)})
    assert "bad" in str(info.value)


def test_unreadable_and_missing_npz(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        read_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz.*not a readable \.npz"):
        read_npz(tmp_path / "junk.npz")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"name": "mnist", "path": "x"}, "unknown image source 'mnist'"),
        ({"name": "npz"}, "missing 'path'"),
        ({"name": "npz", "path": "x", "download": True}, r"unknown settings \['download'\]"),
        ({"name": "npz", "path": "d.npz", "val_fraction": 1.5}, r"val_fraction must be in \(0, 1\)"),
        ({"name": "npz", "path": "d.npz", "limit": 0}, "limit must be a positive integer"),
        ({"name": "npz", "path": "tiny.npz"}, "too few to carve out a test split"),
        ({"name": "npz", "path": "d.npz", "limit": 1}, "too few for a validation split"),
        ({"name": "npz", "path": "d.npz", "ood": {"name": "npz", "path": "gray.npz"}}, "OOD images"),
        ({"name": "npz", "path": "d.npz", "ood": {"name": "npz", "path": "d.npz", "test_limit": 2}},
         r"data.ood: unknown settings \['test_limit'\]"),
    ],
)
def test_settings_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    _write_npz(tmp_path / "d.npz", x_train=GOOD_X, y_train=GOOD_Y)
    _write_npz(tmp_path / "tiny.npz", x_train=GOOD_X[:2], y_train=GOOD_Y[:2])
    _write_npz(tmp_path / "gray.npz", x_train=GOOD_X[..., :1], y_train=GOOD_Y)
    with pytest.raises(ValueError, match=match):
        load_image_problem(settings)


def test_path_override_and_ood_probe(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", x_train=_indexed_images(40), y_train=np.arange(40) % 10)
    ood = _write_npz(tmp_path / "o.npz", x_train=_indexed_images(20) + 100, y_train=np.zeros(20, np.int64),
                     x_test=_indexed_images(12) + 200, y_test=np.ones(12, np.int64))
    settings = {"name": "npz", "path": "placeholder/missing.npz", "ood": {"name": "npz", "path": str(ood),
                                                                      "limit": 5}}
    problem = load_image_problem(settings, seed=1, path=path)
    assert problem.name == "d" and problem.probe_name == "o"
    assert problem.x_probe is not None and problem.y_probe is not None
    assert problem.x_probe.shape == (5, 3, 4, 4) and problem.y_probe.tolist() == [1] * 5
    expected = problem.normalize(torch.full((1, 3, 4, 4), 200, dtype=torch.uint8))
    assert bool((problem.x_probe >= expected).all())  # the OOD test split, normalised like the data


def test_an_npz_path_is_read_as_npz_for_folder_sources(tmp_path: Path) -> None:
    """``--data X.npz`` serves a cifar10 config and ``--ood-data Y.npz`` its svhn OOD source."""
    path = _write_npz(tmp_path / "d.npz", x_train=_indexed_images(40), y_train=np.arange(40) % 10)
    ood = _write_npz(tmp_path / "o.npz", x_train=_indexed_images(12) + 100, y_train=np.zeros(12, np.int64))
    settings = {"name": "cifar10", "path": "data/cifar10", "download": False, "val_fraction": 0.1,
                "ood": {"name": "svhn", "path": "data/svhn", "limit": 5}}
    given = {**settings, "ood": {**settings["ood"], "path": str(ood)}}
    problem = load_image_problem(given, seed=1, path=path)
    reference = load_image_problem({"name": "npz", "path": str(path), "val_fraction": 0.1,
                                    "ood": {"name": "npz", "path": str(ood), "limit": 5}}, seed=1)
    assert (problem.name, problem.probe_name) == ("d", "o")
    for key in ("x_train", "y_train", "x_val", "x_test", "y_test", "x_probe"):
        assert torch.equal(getattr(problem, key), getattr(reference, key)), key
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):  # a folder stays a folder
        load_image_problem(settings, path=tmp_path)


def test_npz_with_only_a_test_split_loads_for_evaluation(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "only_test.npz", x_test=GOOD_X, y_test=GOOD_Y)
    assert set(read_npz(path)) == {"test"}
    with pytest.raises(ValueError, match="training needs x_train/y_train"):
        load_image_problem({"name": "npz", "path": str(path)})
