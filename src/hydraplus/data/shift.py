"""Dataset shift (docs/method.md#dataset-shift): four transformations at five levels,
empty pixels filled with 0.

Applied to uint8 or [0, 1] float images ``[..., C, H, W]`` before normalisation; the result
has the input's dtype. Every transformation is deterministic (nearest-pixel sampling):

* ``horizontal`` / ``vertical``: translate right / down by a fraction of the width / height,
  rounded to whole pixels (10% of 32 px is 3 px, 30% is 10 px);
* ``rotation``: rotate counter-clockwise about the image centre by that many degrees;
* ``brightness``: multiply by the factor and clip to the valid range (uint8 results truncate).

`CORRUPTIONS` adds two common corruptions at five severities, with the CIFAR-10-C constants
(Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019; ``make_cifar_c.py`` in github.com/hendrycks/robustness), for any
number of channels; uint8 results are rounded to the nearest level:

* ``gaussian_noise``: add N(0, std^2) noise per pixel on the [0, 1] scale and clip; the noise comes
  from a generator seeded with ``seed``, so the same images and seed give the same result;
* ``gaussian_blur``: Gaussian filter of that sigma in pixels, truncated at 4 sigma as in
  scikit-image (kernel 5, 5, 7, 7, 9 px), with reflected borders (CIFAR-10-C repeats the edge pixel).

`DISTORTIONS` holds both tables: the six kinds image evaluation applies, through `distort_images`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

SHIFTS: dict[str, tuple[float, ...]] = {
    "horizontal": (0.1, 0.2, 0.3, 0.4, 0.5),
    "vertical": (0.1, 0.2, 0.3, 0.4, 0.5),
    "rotation": (15.0, 30.0, 45.0, 60.0, 75.0),
    "brightness": (1.1, 1.2, 1.3, 1.4, 1.5),
}
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std on the [0, 1] scale
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma in pixels
}
DISTORTIONS: dict[str, tuple[float, ...]] = {**SHIFTS, **CORRUPTIONS}  # what image evaluation applies
BLUR_TRUNCATE = 4.0  # kernel radius in sigmas (scikit-image's default, used by CIFAR-10-C)


def _pixels(fraction: float, size: int) -> int:
    """``fraction * size`` rounded to the nearest pixel (halves up)."""
    return math.floor(fraction * size + 0.5)


def _check_pixels(images: Tensor) -> None:
    """uint8, or floating point in [0, 1]: raw pixels before normalisation."""
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")
    if images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("float images must be in [0, 1] (shift or corrupt before normalising)")


def _check_level(level: int, levels: tuple[float, ...], what: str) -> None:
    if not isinstance(level, int) or not 1 <= level <= len(levels):
        raise ValueError(f"{what} level must be an integer in 1..{len(levels)}, got {level!r}")


def apply_shift(images: Tensor, kind: str, magnitude: float) -> Tensor:
    """One transformation of ``kind`` with a raw magnitude (fraction, degrees or factor)."""
    if kind not in SHIFTS:
        raise ValueError(f"unknown shift {kind!r}; choose one of {sorted(SHIFTS)}")
    if images.dim() < 3 or images.shape[-3] not in (1, 3):
        raise ValueError(f"expected images [..., C, H, W] with 1 or 3 channels, got {tuple(images.shape)}")
    _check_pixels(images)
    if kind == "brightness":
        if magnitude < 0:
            raise ValueError(f"brightness factor must be >= 0, got {magnitude}")
        return TF.adjust_brightness(images, magnitude)
    if kind == "rotation":
        return TF.rotate(images, float(magnitude), fill=0.0)
    height, width = images.shape[-2:]
    dx = _pixels(magnitude, width) if kind == "horizontal" else 0
    dy = _pixels(magnitude, height) if kind == "vertical" else 0
    return TF.affine(images, angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0], fill=0.0)


def shift_images(images: Tensor, kind: str, level: int) -> Tensor:
    """The paper's shift ``kind`` at ``level`` 1..5 (see `SHIFTS`)."""
    if kind not in SHIFTS:
        raise ValueError(f"unknown shift {kind!r}; choose one of {sorted(SHIFTS)}")
    levels = SHIFTS[kind]
    _check_level(level, levels, "shift")
    return apply_shift(images, kind, levels[level - 1])


def corrupt_images(images: Tensor, kind: str, level: int, seed: int = 0) -> Tensor:
    """The common corruption ``kind`` at severity ``level`` 1..5 (see `CORRUPTIONS`) of uint8 or
    [0, 1] float images ``[..., C, H, W]``; the result has the input's shape and dtype."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {sorted(CORRUPTIONS)}")
    levels = CORRUPTIONS[kind]
    _check_level(level, levels, "corruption")
    if images.dim() < 3:
        raise ValueError(f"expected images [..., C, H, W], got {tuple(images.shape)}")
    _check_pixels(images)
    value = levels[level - 1]
    if kind == "gaussian_blur":
        radius = int(BLUR_TRUNCATE * value + 0.5)
        return TF.gaussian_blur(images, [2 * radius + 1] * 2, [value, value])
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images.device)
    if images.dtype == torch.uint8:
        return (images + 255 * value * noise).round().clamp(0, 255).to(torch.uint8)
    return (images + value * noise.to(images.dtype)).clamp(0, 1)


def distort_images(images: Tensor, kind: str, level: int, seed: int = 0) -> Tensor:
    """A shift (`SHIFTS`) or a corruption (`CORRUPTIONS`, noise drawn from ``seed``) at ``level`` 1..5."""
    if kind in SHIFTS:
        return shift_images(images, kind, level)
    if kind in CORRUPTIONS:
        return corrupt_images(images, kind, level, seed)
    raise ValueError(f"unknown shift or corruption {kind!r}; choose one of {sorted(DISTORTIONS)}")
