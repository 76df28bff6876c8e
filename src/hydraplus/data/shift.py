"""Dataset shift (docs/method.md#dataset-shift): four transformations at five levels,
empty pixels filled with 0.

Applied to uint8 or [0, 1] float images ``[..., C, H, W]`` before normalisation; the result
has the input's dtype. Every transformation is deterministic (nearest-pixel sampling):

* ``horizontal`` / ``vertical``: translate right / down by a fraction of the width / height,
  rounded to whole pixels (10% of 32 px is 3 px, 30% is 10 px);
* ``rotation``: rotate counter-clockwise about the image centre by that many degrees;
* ``brightness``: multiply by the factor and clip to the valid range (uint8 results truncate).
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


def _pixels(fraction: float, size: int) -> int:
    """``fraction * size`` rounded to the nearest pixel (halves up)."""
    return math.floor(fraction * size + 0.5)


def apply_shift(images: Tensor, kind: str, magnitude: float) -> Tensor:
    """One transformation of ``kind`` with a raw magnitude (fraction, degrees or factor)."""
    if kind not in SHIFTS:
        raise ValueError(f"unknown shift {kind!r}; choose one of {sorted(SHIFTS)}")
    if images.dim() < 3 or images.shape[-3] not in (1, 3):
        raise ValueError(f"expected images [..., C, H, W] with 1 or 3 channels, got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")
    if images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("float images must be in [0, 1] (shift before normalising)")
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
    if not isinstance(level, int) or not 1 <= level <= len(levels):
        raise ValueError(f"shift level must be an integer in 1..{len(levels)}, got {level!r}")
    return apply_shift(images, kind, levels[level - 1])
