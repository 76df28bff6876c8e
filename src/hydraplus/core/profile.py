"""Parameter and FLOP counts (FLOPs = 2 x multiply-adds, from torch.utils.flop_counter)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.modes import evaluating
from hydraplus.core.precision import autocast


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, example: Tensor) -> int:
    """FLOPs of one forward pass on ``example`` (batch of 1 gives per-input FLOPs)."""
    with evaluating(model), FlopCounterMode(display=False) as counter:
        model(example)
    return int(counter.get_total_flops())


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


@torch.no_grad()
def measure_latency(model: nn.Module, example: Tensor, batch_size: int = 1, warmup: int = 3,
                    repeats: int = 10) -> float:
    """Median seconds of an eval-mode forward pass on ``batch_size`` copies of ``example[:1]``.

    Runs on the model's device, after ``warmup`` passes; CUDA is synchronised around each pass.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {batch_size}, "
                         f"{repeats}, {warmup}")
    device = _device(model)
    x = example[:1].to(device).expand(batch_size, *example.shape[1:]).contiguous()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with evaluating(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def profile_model(model: nn.Module, example_input: Tensor, batch_sizes: Sequence[int] = (1, 256),
                  warmup: int = 3, repeats: int = 10, precision: str = "32") -> dict[str, float]:
    """Params, FLOPs per input and ``latency_b{B}_s`` per batch size (timed in ``precision``); for a
    `MultiHeadStudent` also ``core_params``/``core_flops`` and one head's ``head_params``/``head_flops``
    (all heads / M)."""
    x = example_input[:1].to(_device(model))
    out: dict[str, float] = {"params": count_params(model), "flops": count_flops(model, x)}
    for batch_size in batch_sizes:
        with autocast(precision, x.device.type):
            out[f"latency_b{batch_size}_s"] = measure_latency(model, x, batch_size, warmup, repeats)
    if isinstance(model, MultiHeadStudent):
        with evaluating(model):
            features = model.core(x)
        m = model.num_heads
        out.update(core_params=count_params(model.core), core_flops=count_flops(model.core, x),
                   head_params=count_params(model.heads) / m,
                   head_flops=count_flops(model.heads, features) / m)
    return out
