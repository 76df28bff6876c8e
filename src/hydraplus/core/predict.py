"""Batched inference over a whole tensor of inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hydraplus.core.modes import evaluating
from hydraplus.validation import check_finite


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Outputs ``[len(x), K, D]`` in eval mode, on the model's device, returned on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) == 0:
        raise ValueError("cannot predict on an empty input")
    check_finite(x, "inputs to predict")
    device = next(model.parameters(), torch.empty(0)).device  # a module without weights: the CPU
    with evaluating(model):
        outs = [model(chunk.to(device)).cpu() for chunk in torch.split(x, batch_size)]
    return torch.cat(outs)
