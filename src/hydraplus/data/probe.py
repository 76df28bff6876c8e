"""Inputs away from the training data, made from the training data alone.

The automatic diversity weight needs somewhere to compare the student's epistemic uncertainty
with the ensemble's where neither has seen data. When no out-of-distribution set is given,
this is built from the training inputs, never from a test set:

- feature vectors ``[N, F]``: points drawn uniformly from the training data's bounding box
  widened by half its span on every side, kept where the nearest training point is farther
  than three times the median distance between training points and their nearest neighbour;
- images ``[N, C, H, W]``: training images with their pixels shuffled (each image its own
  permutation, the same for every channel): the colours stay, every structure is gone.
"""

from __future__ import annotations

import torch
from torch import Tensor

PROBE_SIZE = 1000
NEIGHBOUR_FACTOR = 3.0


def _nearest_distances(a: Tensor, b: Tensor, skip_self: bool = False) -> Tensor:
    """Distance from every row of ``a`` to its nearest row of ``b`` (chunked: bounded memory)."""
    out = []
    for chunk in torch.split(a, 1024):
        d = torch.cdist(chunk, b)
        out.append(d.topk(2, dim=1, largest=False).values[:, 1] if skip_self else d.min(dim=1).values)
    return torch.cat(out)


def feature_probe(x: Tensor, size: int = PROBE_SIZE, seed: int = 0) -> Tensor:
    """Up to ``size`` points of the widened bounding box that lie away from every training point."""
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"feature inputs must be [N >= 2, F], got {list(x.shape)}")
    generator = torch.Generator().manual_seed(seed)
    x = x.float()
    low, high = x.min(0).values, x.max(0).values
    span = (high - low).clamp_min(1e-6)
    radius = NEIGHBOUR_FACTOR * _nearest_distances(x, x, skip_self=True).median()
    kept: list[Tensor] = []
    for _ in range(20):  # each round draws 4x the points still needed
        need = size - sum(len(k) for k in kept)
        if need <= 0:
            break
        points = low - span / 2 + 2 * span * torch.rand(4 * need, x.shape[1], generator=generator)
        kept.append(points[_nearest_distances(points, x) > radius])
    probe = torch.cat(kept)[:size]
    if len(probe) == 0:
        raise ValueError("found no points away from the training data in its widened bounding box")
    return probe


def image_probe(x: Tensor, size: int = PROBE_SIZE, seed: int = 0) -> Tensor:
    """``size`` training images (drawn with replacement) with their pixels shuffled."""
    if x.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got {list(x.shape)}")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(x), (size,), generator=generator)
    flat = x[picks].flatten(2)  # [size, C, H*W]
    order = torch.argsort(torch.rand(size, flat.shape[-1], generator=generator), dim=1)
    return flat.gather(2, order.unsqueeze(1).expand_as(flat)).view(size, *x.shape[1:])


def off_data_probe(x: Tensor, size: int = PROBE_SIZE, seed: int = 0) -> Tensor:
    """The probe set for training inputs ``x``: see the module docstring."""
    return image_probe(x, size, seed) if x.dim() == 4 else feature_probe(x, size, seed)
