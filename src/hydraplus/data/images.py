"""Image data sets (SVHN, CIFAR-10, Fashion-MNIST, any .npz) as normalised NCHW tensors.

Readers return raw splits (uint8 ``[N, C, H, W]`` images, int64 labels); `make_image_problem`
carves a seeded validation split (and a test split when the source has none), optionally
subsets them, and normalises with per-channel statistics of the training split.
`load_image_problem` does all of this from a config's data section::

    {"name": "npz", "path": "data/cifar10_train.npz", "limit": 10000, "test_limit": 2000,
     "ood": {"name": "svhn", "path": "data/svhn"}}

``name`` is a registered image source (`hydraplus.data.sources`; the built-in ones are registered
at the end of this module, each with its number of classes and normalisation); ``path`` is the
.npz file or the data set's folder (relative paths are taken from the working directory; the
CLI's ``--data`` replaces ``path``). A ``path``
ending in ``.npz`` is read as an .npz file whatever the ``name`` (the source's own options are then
unused), so ``--data cifar10_train.npz`` serves a ``cifar10`` config. Fashion-MNIST
may leave ``path`` out: it is then read from Debian's ``/usr/share/datasets/fashion-mnist``.
Other keys: ``seed``, ``val_fraction``, ``test_fraction``, ``limit``, ``test_limit``,
``download``/``verify`` (CIFAR-10, SVHN), ``size``/``channels`` (Fashion-MNIST), ``ood``
(another source whose test split becomes ``x_probe``, normalised like the main data; it takes
``name``, ``path``, ``limit``, ``seed``, its source's options, and ``grayscale``/``size`` to
bring its images to the main data's shape) and ``holdout_classes`` (classes left out of
training and testing whose test images become ``x_probe``: near-OOD detection)::

    {"name": "fashion-mnist",
     "ood": {"name": "npz", "path": "data/cifar10_train.npz", "limit": 2000, "grayscale": true, "size": 28}}
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, SVHN
from torchvision.transforms.v2 import functional as TF

from hydraplus.data.problem import Problem
from hydraplus.data.sources import (
    HOLDOUT_KEY,
    SOURCES,
    SPLIT_KEYS,
    Source,
    allowed_keys,
    get_source,
    ood_allowed_keys,
    register_source,
    source_names,
)


class RawImages(NamedTuple):
    """Unnormalised images ``[N, C, H, W]`` uint8 and labels ``[N]`` int64."""

    x: Tensor
    y: Tensor


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] scale: ``(x / 255 - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std need one value per channel, got {self.mean}, {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0 in every channel, got {self.std}")

    @classmethod
    def from_images(cls, images: Tensor) -> Normalization:
        """Exact statistics of uint8 ``[N, C, H, W]`` images (from per-channel value counts)."""
        values = torch.arange(256, dtype=torch.float64)
        mean, std = [], []
        for c in range(images.shape[1]):
            counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
            p = counts / counts.sum()
            m = float((p * values).sum()) / 255.0
            var = float((p * values.square()).sum()) / 255.0**2 - m * m
            mean.append(m)
            std.append(max(var, 0.0) ** 0.5 or 1.0)  # a constant channel is left unscaled
        return cls(tuple(mean), tuple(std))

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 (0..255) or float ([0, 1]) ``[N, C, H, W]`` images to normalised float32."""
        if images.dim() != 4 or images.shape[1] != len(self.mean):
            raise ValueError(
                f"expected images [N, {len(self.mean)}, H, W], got shape {tuple(images.shape)}"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"images must be uint8 or floating point, got {images.dtype}")
        x = images.to(torch.float32, copy=True)
        if images.dtype == torch.uint8:
            x.div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)

    def black(self) -> tuple[float, ...]:
        """A black pixel (0 in every channel) after normalisation: the fill for padding."""
        return tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))


@dataclass
class ImageProblem(Problem):
    """Normalised float32 NCHW splits, plus the raw test images and the normalisation.

    ``x_test_raw`` (uint8) is the test set before normalisation, for dataset shift:
    ``problem.normalize(shift_images(problem.x_test_raw, kind, level))``. ``x_probe`` holds
    normalised out-of-distribution images when an OOD source was loaded. ``held_out_classes``
    (original labels) were left out of the splits; the others are relabelled 0..K-1 in order.
    """

    normalization: Normalization
    x_test_raw: Tensor
    x_probe: Tensor | None = None
    y_probe: Tensor | None = None
    probe_name: str | None = None
    held_out_classes: list[int] | None = None

    def normalize(self, images: Tensor) -> Tensor:
        """Normalise uint8 or [0, 1] float images like the training data."""
        return self.normalization(images)


def check_images(x: np.ndarray, y: np.ndarray, source: str, channels_last: bool = True, *,
                 num_classes: int) -> RawImages:
    """Validate uint8 images (NHWC, or NCHW) and integer labels in [0, num_classes); to NCHW."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise ValueError(f"{source}: images must be a uint8 array, got {getattr(x, 'dtype', type(x))}")
    layout = "[N, H, W, C]" if channels_last else "[N, C, H, W]"
    if x.ndim != 4 or x.shape[3 if channels_last else 1] not in (1, 3):
        raise ValueError(f"{source}: images must be {layout} with 1 or 3 channels, got shape {x.shape}")
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{source}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{source}: the data set is empty (0 images)")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{source}: labels must be in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}"
        )
    if channels_last:
        x = x.transpose(0, 3, 1, 2)
    return RawImages(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))


def read_npz(path: str | Path, num_classes: int | None = None) -> dict[str, RawImages]:
    """``{"train": ..., "test": ...}`` from uint8 NHWC ``x_train``/``y_train`` and/or ``x_test``/``y_test``;
    labels in 0..num_classes-1 (default: the ``npz`` source's number of classes).
    """
    num_classes = get_source("npz").classes if num_classes is None else num_classes
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image data file not found: {path}")
    try:
        with np.load(path) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npz archive ({err})") from err
    splits = {}
    for split in ("train", "test"):
        x_key, y_key = f"x_{split}", f"y_{split}"
        if (x_key in arrays) != (y_key in arrays):
            missing = y_key if x_key in arrays else x_key
            raise ValueError(f"{path}: missing array {missing!r} ({x_key} and {y_key} must both be "
                             "present or both absent)")
        if x_key in arrays:
            splits[split] = check_images(arrays[x_key], arrays[y_key], f"{path} [{split}]",
                                          num_classes=num_classes)
    if not splits:
        raise ValueError(f"{path}: missing arrays: needs x_train/y_train and/or x_test/y_test "
                         f"(has {sorted(arrays)})")
    return splits


class _UnverifiedCIFAR10(CIFAR10):
    """CIFAR10 that checks that the files exist but not their MD5 sums."""

    train_list: ClassVar[list[list[str | None]]] = [[name, None] for name, _ in CIFAR10.train_list]
    test_list: ClassVar[list[list[str | None]]] = [[name, None] for name, _ in CIFAR10.test_list]
    meta: ClassVar[dict[str, str | None]] = {**CIFAR10.meta, "md5": None}


class _UnverifiedSVHN(SVHN):
    """SVHN that checks that the file exists but not its MD5 sum."""

    split_list: ClassVar[dict[str, list[str | None]]] = {
        k: [url, name, None] for k, (url, name, _) in SVHN.split_list.items()
    }


def _missing(folder: Path, names: Sequence[str]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def read_cifar10(root: str | Path, train: bool = True, download: bool = False,
                 verify: bool = True) -> RawImages:
    """CIFAR-10 through torchvision (``root/cifar-10-batches-py``).

    ``verify=False`` skips torchvision's MD5 check, for copies that differ from the official files.
    """
    root = Path(root)
    folder = root / CIFAR10.base_folder
    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    missing = _missing(folder, names)
    if missing and not download:
        raise FileNotFoundError(
            f"CIFAR-10 not found: {folder} lacks {missing}; set download=True to fetch it"
        )
    cls = CIFAR10 if verify else _UnverifiedCIFAR10
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as err:
        raise ValueError(f"CIFAR-10 under {folder} failed torchvision's check ({err}); "
                         "use verify=False for files that differ from the official ones") from err
    return check_images(np.asarray(ds.data), np.asarray(ds.targets), f"CIFAR-10 {folder}",
                        num_classes=get_source("cifar10").classes)


def read_svhn(root: str | Path, split: str = "train", download: bool = False,
              verify: bool = True) -> RawImages:
    """SVHN (cropped digits) through torchvision (``root/{split}_32x32.mat``); digit 0 has label 0."""
    root = Path(root)
    if split not in SVHN.split_list:
        raise ValueError(f"SVHN split must be one of {sorted(SVHN.split_list)}, got {split!r}")
    filename = SVHN.split_list[split][1]
    if not (root / filename).is_file() and not download:
        raise FileNotFoundError(f"SVHN not found: {root / filename}; set download=True to fetch it")
    cls = SVHN if verify else _UnverifiedSVHN
    try:
        ds = cls(str(root), split=split, download=download)
    except ImportError as err:
        raise ImportError("reading SVHN's .mat files needs scipy: pip install scipy") from err
    except RuntimeError as err:
        raise ValueError(f"SVHN file {root / filename} failed torchvision's check ({err}); "
                         "use verify=False for files that differ from the official ones") from err
    except (KeyError, ValueError) as err:
        raise ValueError(f"{root / filename}: not an SVHN .mat file with X and y ({err})") from err
    labels = np.asarray(ds.labels).reshape(-1)
    return check_images(np.asarray(ds.data), labels, f"SVHN {root / filename}", channels_last=False,
                        num_classes=get_source("svhn").classes)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file of unsigned bytes (plain or gzip-compressed) as a uint8 array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX shape {shape} needs {expected} data bytes, the file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _idx_file(root: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in root or in torchvision's ``root/FashionMNIST/raw``."""
    source = get_source("fashion-mnist")
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root} or {root}/FashionMNIST/raw; install it with "
        f"`{source.install_hint}` (into {source.default_path}) or pass its folder "
        "with --data (data.path)"
    )


def read_fashion_mnist(root: str | Path, train: bool = True, size: int | None = None,
                       channels: int = 1) -> RawImages:
    """Fashion-MNIST from IDX files; ``size`` resizes (bilinear), ``channels=3`` replicates grey."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    root, prefix = Path(root), "train" if train else "t10k"
    images_path = _idx_file(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_file(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected images [N, H, W], got shape {images.shape}")
    out = check_images(images[..., None], labels, f"Fashion-MNIST {images_path}",
                       num_classes=get_source("fashion-mnist").classes)
    x = out.x
    if size is not None:
        x = TF.resize(x, [size, size], antialias=True)
    return RawImages(x.expand(-1, channels, -1, -1).contiguous(), out.y)


def read_source(name: str, path: str | Path, splits: Sequence[str] = ("train", "test"),
                **options: Any) -> dict[str, RawImages]:
    """The asked-for ``train``/``test`` splits of a source (an .npz file may lack ``test``)."""
    if name not in source_names("image"):
        raise ValueError(f"unknown image source {name!r}; choose one of {tuple(source_names('image'))}")
    if set(splits) - {"train", "test"}:
        raise ValueError(f"splits must be 'train' and/or 'test', got {list(splits)}")
    return get_source(name).read(path, splits, **options)


def _seeded_subset(n: int, count: int | None, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n)
    return np.sort(order if count is None else order[:count])


def _index(idx: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _check_count(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def make_image_problem(
    name: str,
    train: RawImages,
    test: RawImages | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    limit: int | None = None,
    test_limit: int | None = None,
    normalization: Normalization | None = None,
    fit_normalization: Callable[[Tensor], Normalization] = Normalization.from_images,
    num_classes: int,
) -> ImageProblem:
    """Seeded splits: test (``test_fraction`` of train when ``test`` is None), then validation.

    ``limit`` keeps at most that many training images (before the validation split) and
    ``test_limit`` that many test images, both as seeded random subsets. Without
    ``normalization``, ``fit_normalization`` (the source's) makes it from the final training split.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_count("limit", limit)
    _check_count("test_limit", test_limit)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train.x))
    if test is None:
        n_test = round(test_fraction * len(order))
        if n_test < 1 or len(order) - n_test < 2:
            raise ValueError(f"{name}: {len(order)} images are too few to carve out a test split")
        test_part = _index(np.sort(order[:n_test]))
        test = RawImages(train.x[test_part], train.y[test_part])
        order = order[n_test:]
    rest = order[:limit]
    n_val = round(val_fraction * len(rest))
    if n_val < 1 or len(rest) - n_val < 1:
        raise ValueError(f"{name}: {len(rest)} training images are too few for a validation split")
    val_idx, train_idx = _index(np.sort(rest[:n_val])), _index(np.sort(rest[n_val:]))
    test_idx = _index(_seeded_subset(len(test.x), test_limit, rng))
    x_train_raw, x_test_raw = train.x[train_idx], test.x[test_idx]
    if x_test_raw.shape[1:] != x_train_raw.shape[1:]:
        raise ValueError(f"{name}: test images {tuple(x_test_raw.shape[1:])} differ from "
                         f"training images {tuple(x_train_raw.shape[1:])}")
    norm = normalization or fit_normalization(x_train_raw)
    return ImageProblem(
        name, "classification", num_classes,
        norm(x_train_raw), train.y[train_idx], norm(train.x[val_idx]), train.y[val_idx],
        norm(x_test_raw), test.y[test_idx], norm, x_test_raw,
    )


def reader_name(name: str, path: str | Path) -> str:
    """The reader a source's files need: ``npz`` for a path ending in ``.npz``, else the source's own."""
    return "npz" if Path(path).suffix.lower() == ".npz" else name


def _source(settings: dict[str, Any], where: str,
            keys: Callable[[dict[str, Any]], frozenset[str]]) -> tuple[str, str]:
    """The source's name and path (its default path when left out); keys outside ``keys(settings)``
    are errors."""
    name = settings.get("name")
    if name not in source_names("image"):
        raise ValueError(f"{where}: unknown image source {name!r}; "
                         f"choose one of {tuple(source_names('image'))}")
    allowed = keys(settings)
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown settings {sorted(unknown)} for {name}; allowed {sorted(allowed)}")
    if "path" in settings:
        return name, str(settings["path"])
    default = SOURCES[name].default_path
    if default is not None:
        return name, default
    raise ValueError(f"{where}: missing 'path' (the .npz file or the data set's folder)")


def check_holdout(classes: Any, num_classes: int) -> list[int]:
    """``data.holdout_classes`` checked: distinct labels in 0..num_classes-1 that leave two or more."""
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes)):
        raise ValueError(f"data.{HOLDOUT_KEY} must be a non-empty list of class labels, got {classes!r}")
    if len(set(classes)) != len(classes) or min(classes) < 0 or max(classes) >= num_classes:
        raise ValueError(f"data.{HOLDOUT_KEY} must be distinct labels in 0..{num_classes - 1}, got {classes}")
    if num_classes - len(classes) < 2:
        raise ValueError(f"data.{HOLDOUT_KEY} {classes} leaves fewer than 2 of {num_classes} classes "
                         "to train on")
    return sorted(classes)


def split_classes(images: RawImages, held_out: Sequence[int],
                  num_classes: int) -> tuple[RawImages, RawImages]:
    """The images of the kept classes, relabelled 0..K-1 in their order, and those of the
    ``held_out`` classes (original labels)."""
    out = torch.isin(images.y, torch.tensor(list(held_out), dtype=images.y.dtype))
    kept = [c for c in range(num_classes) if c not in held_out]
    relabel = torch.full((num_classes,), -1, dtype=torch.long)
    relabel[kept] = torch.arange(len(kept))
    return RawImages(images.x[~out], relabel[images.y[~out]]), RawImages(images.x[out], images.y[out])


def convert_images(images: Tensor, grayscale: bool = False, size: int | None = None) -> Tensor:
    """uint8 ``[N, C, H, W]`` images as one grey channel (``grayscale``: torchvision's ITU-R 601-2
    luma of RGB; grey images stay) and/or resized to ``size`` x ``size`` (antialiased bilinear)."""
    if grayscale and images.shape[1] == 3:
        images = TF.rgb_to_grayscale(images, num_output_channels=1)
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = TF.resize(images, [size, size], antialias=True)
    return images


def load_image_problem(
    settings: dict[str, Any], seed: int = 0, path: str | Path | None = None
) -> ImageProblem:
    """An `ImageProblem` from a config data section; ``path`` (e.g. the CLI's --data) replaces its path."""
    if path is not None:
        settings = {**settings, "path": str(path)}
    name, data_path = _source(settings, "data", allowed_keys)
    source = get_source(name)  # the data set's classes and normalisation, whichever files are read
    name = reader_name(name, data_path)
    options = {k: v for k, v in settings.items() if k in SOURCES[name].keys}
    splits = {k: v for k, v in settings.items() if k in SPLIT_KEYS}
    splits.setdefault("seed", seed)
    raw = read_source(name, data_path, **options)
    title = Path(data_path).stem if name == "npz" else name
    if "train" not in raw:
        raise ValueError(f"{data_path}: missing array 'x_train' (training needs x_train/y_train)")
    held_out: list[int] = []
    if HOLDOUT_KEY in settings:
        if "ood" in settings:
            raise ValueError(f"data: {HOLDOUT_KEY} makes the held-out classes the OOD set; "
                             "leave out data.ood")
        held_out = check_holdout(settings[HOLDOUT_KEY], source.classes)
        parts = {split: split_classes(images, held_out, source.classes) for split, images in raw.items()}
        raw = {split: kept for split, (kept, _) in parts.items()}
        probe = parts["test" if "test" in parts else "train"][1]
    problem = make_image_problem(title, raw["train"], raw.get("test"), fit_normalization=source.normalization,
                                 num_classes=source.classes - len(held_out), **splits)
    if held_out:
        problem.x_probe, problem.y_probe = problem.normalize(probe.x), probe.y
        problem.probe_name = f"held-out classes {','.join(map(str, held_out))}"
        problem.held_out_classes = held_out
    if "ood" in settings:
        attach_ood(problem, settings["ood"], seed)
    return problem


def attach_ood(problem: ImageProblem, settings: dict[str, Any], seed: int = 0) -> None:
    """Set ``x_probe``/``y_probe`` to the OOD source's test split (train if it has none): a seeded
    subset of ``limit`` images, made grey and resized as ``grayscale``/``size`` ask."""
    if not isinstance(settings, dict):
        raise ValueError(f"data.ood must be an object with a 'name', got {settings!r}")
    name, path = _source(settings, "data.ood", ood_allowed_keys)
    name = reader_name(name, path)
    _check_count("data.ood.limit", settings.get("limit"))
    grayscale = settings.get("grayscale", False)
    if not isinstance(grayscale, bool):
        raise ValueError(f"data.ood.grayscale must be true or false, got {grayscale!r}")
    size = settings.get("size")
    _check_count("data.ood.size", size)
    options = {k: v for k, v in settings.items() if k in SOURCES[name].keys}
    try:
        found = read_source(name, path, ("test",), **options)
        raw = found["test"] if "test" in found else read_source(name, path, ("train",), **options)["train"]
    except FileNotFoundError as err:
        raise FileNotFoundError(f"data.ood: {err} (hydraplus train --ood-data PATH replaces data.ood.path)"
                                ) from err
    keep = _index(_seeded_subset(len(raw.x), settings.get("limit"),
                                 np.random.default_rng(settings.get("seed", seed))))
    x = convert_images(raw.x[keep], grayscale, size)
    if x.shape[1:] != problem.x_test_raw.shape[1:]:
        raise ValueError(f"OOD images {tuple(x.shape[1:])} differ in shape from {problem.name}'s "
                         f"{tuple(problem.x_test_raw.shape[1:])} [C, H, W]; data.ood.grayscale and "
                         "data.ood.size convert them")
    problem.x_probe, problem.y_probe = problem.normalize(x), raw.y[keep]
    problem.probe_name = Path(path).stem if name == "npz" else name


def load_test_problem(path: str | Path, normalization: Normalization,
                      image_shape: Sequence[int] | None = None,
                      num_classes: int | None = None) -> ImageProblem:
    """An evaluation-only problem from an .npz never used in training (``num_classes`` by default
    the ``npz`` source's).

    The test set is the file's ``x_test``/``y_test``, or all of ``x_train``/``y_train`` when it
    has no test split, normalised with ``normalization`` (the trained run's); the training and
    validation splits are empty. ``image_shape`` ``[C, H, W]`` is the shape the models expect.
    """
    splits = read_npz(path)
    raw = splits["test"] if "test" in splits else splits["train"]
    if image_shape is not None and list(raw.x.shape[1:]) != list(image_shape):
        raise ValueError(f"{path}: images {list(raw.x.shape[1:])} [C, H, W] differ from the run's "
                         f"training images {list(image_shape)}")
    x = normalization(raw.x)
    num_classes = get_source("npz").classes if num_classes is None else num_classes
    return ImageProblem(Path(path).stem, "classification", num_classes, x[:0], raw.y[:0], x[:0],
                        raw.y[:0], x, raw.y, normalization, raw.x)


# --- the built-in image sources, in the order every listing follows -------------------------


def _each_split(reader: Callable[..., RawImages]) -> Callable[..., dict[str, RawImages]]:
    """A source's ``read`` from a reader of one split (``reader(path, split, **options)``)."""
    return lambda path, splits, **options: {split: reader(path, split, **options) for split in splits}


register_source(Source(
    "npz", "image", classes=10, normalization=Normalization.from_images,
    read=lambda path, splits: {k: v for k, v in read_npz(path).items() if k in splits}))
register_source(Source(
    "cifar10", "image", classes=10, normalization=Normalization.from_images,
    keys=frozenset({"download", "verify"}),
    read=_each_split(lambda path, split, **o: read_cifar10(path, train=split == "train", **o))))
register_source(Source(
    "svhn", "image", classes=10, normalization=Normalization.from_images,
    keys=frozenset({"download", "verify"}),
    read=_each_split(lambda path, split, **o: read_svhn(path, split=split, **o))))
register_source(Source(
    "fashion-mnist", "image", classes=10, normalization=Normalization.from_images,
    keys=frozenset({"size", "channels"}),
    # Debian's ``dataset-fashion-mnist``: read from there when a config leaves ``path`` out.
    default_path="/usr/share/datasets/fashion-mnist", install_hint="apt install dataset-fashion-mnist",
    read=_each_split(lambda path, split, **o: read_fashion_mnist(path, train=split == "train", **o))))
