"""Seeded, resumable batch order: the order of epoch e depends only on (seed, e).

Because each epoch's permutation is re-derived from the seed and the epoch number,
a run resumed at an epoch boundary sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler


class TensorBatches(Dataset):
    """Indexes several equal-length tensors with a whole index tensor at once."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = tensors[0].shape[0]
        if n == 0:
            raise ValueError("the dataset is empty (0 examples)")
        for t in tensors:
            if t.shape[0] != n:
                raise ValueError(
                    f"tensors differ in length: {[tuple(t.shape) for t in tensors]}"
                )
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: Tensor) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


class SeededBatchSampler(Sampler[Tensor]):
    """Yields index batches ``[B]`` (or ``[B, streams]``: one own order per member).

    Each stream s gets the permutation drawn from ``seed``, the epoch and s, so members
    see the data in their own order.
    """

    def __init__(self, size: int, batch_size: int, seed: int, streams: int | None = None,
                 shuffle: bool = True):
        if size < 1:
            raise ValueError("the dataset is empty (0 examples)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.streams, self.shuffle, self.epoch = streams, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self, stream: int) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        state = np.random.SeedSequence([self.seed, self.epoch, stream]).generate_state(2)
        g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[Tensor]:
        if self.streams is None:
            order = self._order(0)
        else:
            order = torch.stack([self._order(s) for s in range(self.streams)], dim=1)
        yield from torch.split(order, self.batch_size)

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


def seeded_loader(
    tensors: tuple[Tensor, ...], batch_size: int, seed: int, streams: int | None = None,
    shuffle: bool = True,
) -> DataLoader:
    """A DataLoader over in-memory tensors with a resumable seeded order."""
    dataset = TensorBatches(*tensors)
    sampler = SeededBatchSampler(len(dataset), batch_size, seed, streams, shuffle)
    return DataLoader(dataset, sampler=sampler, batch_size=None)
