"""Seeded, resumable batch order and augmentation: epoch e depends only on (seed, e).

Because each epoch's permutation (and each batch's augmentation) is re-derived from the
seed, the epoch and the batch number, a run resumed at an epoch boundary sees exactly
the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from hydraplus.data.augment import Augmentation
from hydraplus.validation import check_finite, check_not_empty


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator whose stream depends only on ``keys`` (well mixed by SeedSequence)."""
    state = np.random.SeedSequence(list(keys)).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class TensorBatches(Dataset):
    """Indexes several equal-length tensors with a whole index tensor at once.

    Every tensor must be non-empty and finite; ``names`` label them in error messages.
    """

    def __init__(self, *tensors: Tensor, names: Sequence[str] | None = None):
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        names = list(names) if names is not None else [f"dataset tensor {i}" for i in range(len(tensors))]
        if len(names) != len(tensors):
            raise ValueError(f"got {len(names)} names for {len(tensors)} tensors")
        for t, name in zip(tensors, names, strict=True):
            check_finite(check_not_empty(t, name), name)
        if any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            lengths = {name: t.shape[0] for t, name in zip(tensors, names, strict=True)}
            raise ValueError(f"the dataset's tensors differ in length (examples): {lengths}")
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
        return torch.randperm(self.size, generator=seeded_generator(self.seed, self.epoch, stream))

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
    shuffle: bool = True, names: Sequence[str] | None = None,
) -> DataLoader:
    """A DataLoader over in-memory tensors with a resumable seeded order (``names``: see TensorBatches)."""
    dataset = TensorBatches(*tensors, names=names)
    sampler = SeededBatchSampler(len(dataset), batch_size, seed, streams, shuffle)
    return DataLoader(dataset, sampler=sampler, batch_size=None)


@dataclass(frozen=True)
class SeededAugment:
    """Augments batch ``b`` of epoch ``e`` with choices drawn from (seed, e, b) only.

    ``fill`` is the border value in the model's input space (a black pixel, normalised).
    """

    augmentation: Augmentation
    seed: int
    fill: tuple[float, ...] | float = 0.0

    def __call__(self, images: Tensor, epoch: int, batch_idx: int) -> Tensor:
        generator = seeded_generator(self.seed, epoch, batch_idx)
        return self.augmentation(images, generator, torch.tensor(self.fill))
