"""Tie-aware ranks in float64: the average ranks of a rank correlation and the per-group means that
make tie-sensitive metrics (AURC, adaptive ECE) independent of the order of the inputs."""

from __future__ import annotations

import torch
from torch import Tensor


def _groups(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per value the index of its group of equal values, and the size of each group."""
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    return inverse, counts


def average_ranks(values: Tensor) -> Tensor:
    """Ranks 1..n of a 1-D tensor, ties sharing the mean of their ranks (``scipy.stats.rankdata``'s
    ``"average"``), in float64 for any number of ties."""
    if values.dim() != 1:
        raise ValueError(f"expected a 1-D tensor, got shape {tuple(values.shape)}")
    inverse, counts = _groups(values)
    last = counts.cumsum(0).double()  # the highest rank of each group (groups in increasing order)
    return (last - (counts.double() - 1) / 2)[inverse]


def tie_means(values: Tensor, keys: Tensor) -> Tensor:
    """``values`` with each replaced by the float64 mean over the inputs that share its ``key``."""
    if values.shape != keys.shape or values.dim() != 1:
        raise ValueError(f"values {tuple(values.shape)} and keys {tuple(keys.shape)} must be the same "
                         "1-D shape")
    inverse, counts = _groups(keys)
    sums = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, values.double())
    return (sums / counts.double())[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors: the Pearson correlation of their average ranks
    (as ``scipy.stats.spearmanr``), in float64; 0 when either is constant."""
    if a.shape != b.shape or a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"expected two 1-D tensors of the same length >= 2, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.pow(2).sum() * rb.pow(2).sum()).sqrt()
    return 0.0 if denominator == 0 else (ra @ rb / denominator).item()
