"""Training-time image augmentation: random crop after padding, and horizontal flip.

The paper trains without augmentation (docs/method.md#image-data); this is an option for users who
want it, e.g. a larger transfer set for distillation. It works on whole normalised batches
``[B, C, H, W]``, each image with its own crop offset and flip, drawn from a generator the
engine seeds with (seed, epoch, batch), so an augmented run is reproducible and resumable.
The padded border is filled with the normalised value of a black pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor


class AugmentParams(NamedTuple):
    """Per-image choices: crop offsets into the padded image ``[B]`` and flip mask ``[B]``."""

    top: Tensor
    left: Tensor
    flip: Tensor


@dataclass(frozen=True)
class Augmentation:
    """Pad by ``crop_padding`` pixels, crop back to the original size at a random offset,
    then flip horizontally with probability 0.5 when ``flip``.

    The standard CIFAR recipe is ``Augmentation(crop_padding=4, flip=True)``.
    """

    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or isinstance(self.crop_padding, bool) \
                or self.crop_padding < 0:
            raise ValueError(f"augment.crop_padding must be an integer >= 0, got {self.crop_padding!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"augment.flip must be true or false, got {self.flip!r}")

    @classmethod
    def from_setting(cls, value: Any, where: str = "augment") -> Augmentation | None:
        """A config value: ``false``/``null`` (none), ``true`` (crop 4 + flip) or a dict of fields."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, dict):
            unknown = set(value) - {"crop_padding", "flip"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed crop_padding, flip")
            return cls(**value)
        raise ValueError(f"{where} must be true, false or {{'crop_padding': 4, 'flip': true}}, "
                         f"got {value!r}")

    def sample(self, batch: int, generator: torch.Generator) -> AugmentParams:
        """Draw every image's offsets and flip (always in the same order, for reproducibility)."""
        span = 2 * self.crop_padding + 1
        top = torch.randint(span, (batch,), generator=generator)
        left = torch.randint(span, (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        return AugmentParams(top, left, flip & self.flip)

    def apply(self, images: Tensor, params: AugmentParams, fill: Tensor | float = 0.0) -> Tensor:
        """Augment ``images [B, C, H, W]`` with given choices; ``fill`` is a scalar or ``[C]``."""
        if images.dim() != 4:
            raise ValueError(f"augmentation needs image batches [B, C, H, W], got shape "
                             f"{tuple(images.shape)}")
        b, c, h, w = images.shape
        device = images.device
        out = images
        p = self.crop_padding
        if p:
            border = torch.as_tensor(fill, dtype=images.dtype, device=device).reshape(-1)
            if border.numel() not in (1, c):
                raise ValueError(f"fill needs 1 or {c} values, got {border.numel()}")
            padded = border.view(1, -1, 1, 1).expand(b, c, h + 2 * p, w + 2 * p).clone()
            padded[:, :, p : p + h, p : p + w] = images
            rows = (params.top.to(device)[:, None] + torch.arange(h, device=device))[:, :, None]
            cols = (params.left.to(device)[:, None] + torch.arange(w, device=device))[:, None, :]
            batch = torch.arange(b, device=device)[:, None, None]
            out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            out = torch.where(params.flip.to(device).view(-1, 1, 1, 1), out.flip(-1), out)
        return out.contiguous()

    def __call__(self, images: Tensor, generator: torch.Generator,
                 fill: Tensor | float = 0.0) -> Tensor:
        """Augment ``images`` with choices drawn from ``generator``."""
        return self.apply(images, self.sample(images.shape[0], generator), fill)
