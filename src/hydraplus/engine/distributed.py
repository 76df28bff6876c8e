"""Training on several processes (Lightning DDP): which process this is and how batches split.

A run on ``devices`` per node × ``num_nodes`` nodes is ``world_size`` processes, each running the
whole program: Lightning's launcher starts the others from the same command line at the first
fit, or SLURM's ``srun`` (or ``torchrun``) starts them all. Every global batch of the seeded
order is split into contiguous rows, one part per process in rank order, so an epoch covers the
same examples in the same order as on one process. Only global rank 0 writes files.
"""

from __future__ import annotations

import atexit
from functools import cache

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import (
    LightningEnvironment,
    LSFEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from torch import Tensor

from hydraplus.choices import STRATEGIES


def lightning_strategy(strategy: str, world_size: int) -> str:
    """The Lightning strategy for ``strategy``: ``auto`` is one device's own, or DDP on several."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "auto":
        return "ddp" if world_size > 1 else "auto"
    return strategy


def rank_rows(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(first row, rows)`` of ``rank``'s part of a global batch of ``total`` rows.

    Contiguous parts in rank order, sizes differing by at most one (as `torch.tensor_split`).
    """
    base, extra = divmod(total, world_size)
    return rank * base + min(rank, extra), base + int(rank < extra)


def check_batches(examples: int, batch_size: int, world_size: int, what: str) -> None:
    """Refuse a batch size that does not split evenly over the processes, or a last batch with
    fewer examples than processes (some process would get none)."""
    if batch_size % world_size:
        raise ValueError(f"{what}: batch size {batch_size} does not divide over world size {world_size} "
                         f"(devices × nodes): each process takes batch size / world size examples of every "
                         f"batch; choose a batch size divisible by {world_size}")
    last = examples % batch_size
    if 0 < last < world_size:
        raise ValueError(f"{what}: the last batch of each epoch holds {last} of the {examples} examples "
                         f"(batch size {batch_size}), fewer than the world size {world_size}, so some "
                         f"process would get none; choose a batch size that leaves 0 or at least "
                         f"{world_size}")


def check_world_size(saved: int, current: int, what: str) -> None:
    """Refuse to resume ``what``, trained on world size ``saved``, on another number of processes."""
    if saved != current:
        raise ValueError(f"cannot resume {what}: it was trained on world size {saved} (devices × nodes), "
                         f"this run has {current}; each process's share of every batch depends on it, so "
                         "resume with the same devices and nodes, or start over in a new output folder or "
                         "with --overwrite")


def process_rank(devices: int) -> int:
    """This process's global rank, as its launcher set it (known before Lightning connects the
    processes): torchrun, SLURM's srun or LSF, detected as Lightning does, else Lightning's own
    launcher (``NODE_RANK`` × devices + ``LOCAL_RANK``); 0 for the process a user started."""
    for environment in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment):
        if environment.detect():
            return environment().global_rank()
    lightning = LightningEnvironment()
    return lightning.node_rank() * devices + lightning.local_rank()


def is_rank_zero(devices: int, num_nodes: int) -> bool:
    """Whether this process writes the run's files (always, on one process)."""
    return devices * num_nodes == 1 or process_rank(devices) == 0


@cache
def close_at_exit() -> None:
    """Close the process group when this process exits (once): left to the interpreter's teardown,
    gloo's can abort the process, which Lightning's launcher takes for a failed rank."""
    atexit.register(_close)


def _close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: Tensor) -> Tensor:
    """``values`` summed over every process, in place (unchanged without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values)
    return values


def gather(value: Tensor) -> Tensor:
    """Every process's ``value`` stacked in rank order ``[world_size, ...]`` (the same on each)."""
    parts = [torch.empty_like(value) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, value.contiguous())
    return torch.stack(parts)


def from_rank_zero(tensors: list[Tensor]) -> None:
    """Overwrite ``tensors`` on every process with global rank 0's (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t, src=0)
