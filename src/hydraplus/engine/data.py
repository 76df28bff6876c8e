"""Seeded, resumable batch order and augmentation: epoch e depends only on (seed, e).

Because each epoch's permutation (and each batch's augmentation) is re-derived from the
seed, the epoch and the batch number, a run resumed at an epoch boundary sees exactly
the batches it would have seen. On several processes each takes its contiguous rows of every
global batch (`hydraplus.engine.distributed`), so the order does not depend on their number.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from hydraplus.core.augment import Augmentation, AugmentParams
from hydraplus.core.checks import check_finite, check_not_empty
from hydraplus.engine.distributed import check_batches, rank_rows


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
    see the data in their own order. With ``world_size`` processes, ``batch_size`` is the
    global batch and process ``rank`` gets its rows of each (`rank_rows`).
    """

    def __init__(self, size: int, batch_size: int, seed: int, streams: int | None = None,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if size < 1:
            raise ValueError("the dataset is empty (0 examples)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        check_batches(size, batch_size, world_size, "the seeded batch order")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.streams, self.shuffle, self.epoch = streams, shuffle, 0
        self.rank, self.world_size = rank, world_size

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
        for batch in torch.split(order, self.batch_size):
            if self.world_size == 1:
                yield batch
            else:
                start, rows = rank_rows(len(batch), self.rank, self.world_size)
                yield batch[start : start + rows]

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

    def __call__(self, images: Tensor, epoch: int, batch_idx: int,
                 part: tuple[int, int] | None = None) -> Tensor:
        """``images`` augmented; ``part = (first, total)`` when they are one process's images
        ``first, first + 1, ...`` of a batch of ``total``: they get the choices they get in it."""
        generator = seeded_generator(self.seed, epoch, batch_idx)
        if part is None:
            return self.augmentation(images, generator, torch.tensor(self.fill))
        first, total = part
        params = self.augmentation.sample(total, generator)
        mine = AugmentParams(*(p[first : first + images.shape[0]] for p in params))
        return self.augmentation.apply(images, mine, torch.tensor(self.fill))


@dataclass(frozen=True)
class SeededMixup:
    """Mixup (Zhang et al., ICLR 2018) of batch ``b`` of epoch ``e`` with choices drawn from
    (seed, e, b) only: one weight w ~ Beta(alpha, alpha) per batch and a partner permutation p of
    its rows; image i becomes w x_i + (1 - w) x_p(i) and its label the same mix of one-hot labels.

    On several processes each mixes its own rows of the global batch.
    """

    alpha: float
    seed: int
    num_classes: int

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"mixup must be > 0 (the Beta distribution's concentration), got {self.alpha!r}")

    def __call__(self, images: Tensor, labels: Tensor, epoch: int, batch_idx: int) -> tuple[Tensor, Tensor]:
        """The mixed images and their soft labels ``[B, C]``."""
        rng = np.random.default_rng([self.seed, epoch, batch_idx])
        weight = float(rng.beta(self.alpha, self.alpha))
        partner = torch.as_tensor(rng.permutation(images.shape[0]), device=images.device)
        onehot = F.one_hot(labels.long(), self.num_classes).to(images.dtype)
        mixed = images.mul(weight).add_(images[partner], alpha=1.0 - weight)
        return mixed, onehot.mul(weight).add_(onehot[partner], alpha=1.0 - weight)


class OnceTensor(Protocol):
    """A tensor made once per run, e.g. the teacher's outputs: `prepare` runs on one process while
    the others wait, then every process can `load` it."""

    def prepare(self) -> None: ...

    def load(self) -> Tensor: ...


class SeededData(L.LightningDataModule):
    """In-memory training tensors in the seeded order, for a fit on one process or several.

    Each process gets its rows of every global batch of ``batch_size`` (`SeededBatchSampler`),
    with the rank and world size of the fit's trainer. ``extra`` appends a tensor made once per
    run (named ``extra_name``): Lightning calls its ``prepare`` on global rank 0 while the other
    processes wait at a barrier, then each process loads it.
    """

    def __init__(self, tensors: tuple[Tensor, ...], batch_size: int, seed: int, *,
                 streams: int | None = None, names: Sequence[str] | None = None,
                 extra: OnceTensor | None = None, extra_name: str = "teacher outputs"):
        super().__init__()
        self.prepare_data_per_node = False  # one process in all, not one per node
        self.batch_size, self.seed, self.streams = batch_size, seed, streams
        self.tensors, self.extra = tensors, extra
        self.names = None if names is None else list(names)
        if self.names is not None and extra is not None:
            self.names.append(extra_name)
        # Tensors at hand are checked now, before training starts; ``extra`` once it is loaded.
        self.dataset = None if extra is not None else TensorBatches(*tensors, names=self.names)

    def prepare_data(self) -> None:
        if self.extra is not None:
            self.extra.prepare()

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            assert self.extra is not None
            self.dataset = TensorBatches(*self.tensors, self.extra.load(), names=self.names)

    def train_dataloader(self) -> DataLoader:
        assert self.dataset is not None, "Lightning calls setup() first"
        trainer = self.trainer
        rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
        sampler = SeededBatchSampler(len(self.dataset), self.batch_size, self.seed, self.streams,
                                     rank=rank, world_size=world)
        return DataLoader(self.dataset, sampler=sampler, batch_size=None)
