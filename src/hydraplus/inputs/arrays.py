"""Data as ``(inputs, targets)`` tensors, from whatever a user has: tensors or arrays, a `Dataset`,
a `DataLoader`, an ``.npz`` file or an image folder (torchvision's ``ImageFolder`` layout: float
NCHW images in [0, 1]); out-of-distribution inputs; the inputs' normalisation applied."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from hydraplus.inputs.contracts import check_not_strings, note, reason


def as_tensors(data: Any, name: str) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` from tensors/arrays, a Dataset, a DataLoader, an ``.npz`` file or an
    image folder (torchvision's ``ImageFolder`` layout: one sub-folder of images per class).

    ``.npz`` images (uint8, ``[N, H, W, C]``) and image folders become float ``[N, C, H, W]``
    in [0, 1]. Empty data, or a number of targets other than of inputs, is an error.
    """
    if isinstance(data, str | Path):
        path = Path(data)
        x, y = read_image_folder(path, name) if path.is_dir() else _read_npz(path, name)
        return checked_pair(x, y, name)
    if isinstance(data, DataLoader):
        batches = list(data)
        if not batches:
            raise ValueError(f"{name}: the DataLoader gave no batches")
        return checked_pair(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), name)
    if isinstance(data, Dataset):
        items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        if not items:
            raise ValueError(f"{name}: the Dataset is empty")
        labels = [np.asarray(item[1]) for item in items]
        check_not_strings(labels, name)
        return checked_pair(torch.stack([torch.as_tensor(item[0]) for item in items]),
                            torch.as_tensor(np.asarray(labels)), name)
    if isinstance(data, tuple | list) and len(data) == 2:
        check_not_strings(data[1], name)
        x, y = (torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else torch.as_tensor(v)
                for v in data)
        if x.dtype == torch.float64:
            x = x.float()
        if y.dtype == torch.float64:
            y = y.float()
        return checked_pair(x, y, name)
    raise TypeError(f"{name} must be (x, y) tensors or arrays, a Dataset, a DataLoader, an .npz path or an "
                    f"image folder, got {type(data).__name__}")


TRAIN_KEYS = (("x_train", "y_train"), ("x", "y"))


def _read_npz(path: Path, name: str) -> tuple[Tensor, Tensor]:
    """An ``.npz``'s ``x_train``/``y_train``, else ``x``/``y``; data other than ``train`` (test,
    validation) also ``x_test``/``y_test``, first. Training never falls back to a test split."""
    if not path.is_file():
        raise FileNotFoundError(f"{name}: data file not found: {path}")
    pairs = TRAIN_KEYS if name == "train" else (("x_test", "y_test"), *TRAIN_KEYS)
    with np.load(path) as arrays:
        for keys in pairs:
            if all(k in arrays for k in keys):
                x, y = arrays[keys[0]], arrays[keys[1]]
                break
        else:
            wanted = ", ".join("/".join(keys) for keys in pairs)
            found = sorted(arrays)
            test = " (a test split is never trained on)" if name == "train" and "x_test" in found else ""
            raise ValueError(f"{name}: {path} has none of the array pairs {wanted}{test}; it has {found}")
    check_not_strings(y, f"{name} ({path})")
    tx = torch.from_numpy(np.ascontiguousarray(x))
    if tx.dtype == torch.uint8 and tx.dim() == 4:
        tx = tx.permute(0, 3, 1, 2).float() / 255.0
    return tx, torch.from_numpy(np.ascontiguousarray(y))


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float], name: str) -> Tensor:
    """``(x - mean) / std`` per channel (dimension 1)."""
    if x.dim() < 2 or len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"{name}: the input normalisation has {len(mean)} means and {len(std)} stds, "
                         f"but the inputs of shape {list(x.shape)} have {x.shape[1] if x.dim() > 1 else 0} "
                         "channels")
    if any(s <= 0 for s in std):
        raise ValueError(f"the input normalisation's std must be > 0, got {list(std)}")
    view = (1, -1) + (1,) * (x.dim() - 2)
    return (x - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)


def checked_pair(x: Tensor, y: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """``(x, y)`` with at least one example and as many targets as inputs; integer inputs as
    float32 (values unchanged, said once), float64 ones as float32."""
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name}: the data is empty (inputs of shape {list(x.shape)})")
    if y.dim() == 0 or len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y) if y.dim() else 0} targets; they must match")
    if not (x.is_floating_point() or x.is_complex()):
        note(f"{name} inputs: {str(x.dtype).removeprefix('torch.')} values read as float32 (unchanged; "
             "scale them yourself if they need it)")
    return (x.float() if x.dtype != torch.float32 and not x.is_complex() else x), y


def read_image_folder(path: Path, name: str) -> tuple[Tensor, Tensor]:
    """Float ``[N, C, H, W]`` images in [0, 1] and int64 class indices from an ``ImageFolder``
    folder (one sub-folder per class); every image must have the same size."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    try:
        dataset = ImageFolder(str(path), transform=to_float)
    except (FileNotFoundError, OSError) as err:
        raise ValueError(f"{name}: {path} is not an image folder (one sub-folder of images per class): "
                         f"{reason(err)}") from err
    images: list[Tensor] = []
    for index, (file, _) in enumerate(dataset.samples):
        image = dataset[index][0]
        if images and image.shape != images[0].shape:
            first = Path(dataset.samples[0][0]).relative_to(path)
            raise ValueError(f"{name}: the images in {path} must all have one size, but {first} is "
                             f"{list(images[0].shape)} and {Path(file).relative_to(path)} is "
                             f"{list(image.shape)}")
        images.append(image)
    return torch.stack(images), torch.tensor(dataset.targets, dtype=torch.int64)


def _inputs(array: np.ndarray) -> Tensor:
    """uint8 ``[N, H, W, C]`` images as float ``[N, C, H, W]`` in [0, 1] (as `as_tensors` reads
    an ``.npz``); other arrays as float."""
    x = torch.from_numpy(np.ascontiguousarray(array))
    return x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 and x.dim() == 4 else x.float()


def npz_test_split(path: Path) -> tuple[Tensor, Tensor] | None:
    """An ``.npz`` file's ``x_test``/``y_test``, or None when it has none."""
    with np.load(path) as arrays:
        if "x_test" not in arrays or "y_test" not in arrays:
            return None
        x, y = _inputs(arrays["x_test"]), torch.from_numpy(np.ascontiguousarray(arrays["y_test"]))
    return checked_pair(x, y, f"test ({path})")


def ood_inputs(data: Any, name: str = "ood") -> Tensor:
    """Inputs without labels (out-of-distribution inputs, or those a spread scale is fitted on, named
    ``name`` in errors): a tensor or array, an ``.npz`` file (``x_test``, else ``x``, else
    ``x_train``; labels not needed), or any data `as_tensors` reads (labels ignored)."""
    if isinstance(data, Tensor | np.ndarray):
        x = torch.as_tensor(data).float()
    elif isinstance(data, str | Path) and Path(data).suffix == ".npz" and Path(data).is_file():
        with np.load(data) as arrays:
            key = next((k for k in ("x_test", "x", "x_train") if k in arrays), None)
            if key is None:
                raise ValueError(f"{name}: {data} has none of the arrays x_test, x, x_train "
                                 f"(it has {sorted(arrays)})")
            x = _inputs(arrays[key])
    else:
        x = as_tensors(data, name)[0].float()
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name}: the data is empty")
    return x
