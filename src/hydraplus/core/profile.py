"""Parameter and FLOP counts (FLOPs = 2 x multiply-adds, from torch.utils.flop_counter)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, example: Tensor) -> int:
    """FLOPs of one forward pass on ``example`` (batch of 1 gives per-input FLOPs)."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
