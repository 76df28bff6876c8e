"""Batched inference over a whole tensor of inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hydraplus.core.checks import check_finite
from hydraplus.core.modes import evaluating
from hydraplus.core.precision import autocast


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024, precision: str = "32",
            check: bool = True) -> Tensor:
    """Outputs ``[len(x), K, D]`` in eval mode, on the model's device, returned on the CPU in float32
    (computed in ``precision``: see `hydraplus.core.precision`). ``check=False`` skips the check for
    NaN and infinite inputs, for a caller that checked ``x`` already (it runs many models on it)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) == 0:
        raise ValueError("cannot predict on an empty input")
    if check:
        check_finite(x, "inputs to predict")
    device = next(model.parameters(), torch.empty(0)).device  # a module without weights: the CPU
    with evaluating(model), autocast(precision, device.type):
        outs = [model(chunk.to(device)).float().cpu() for chunk in torch.split(x, batch_size)]
    return torch.cat(outs)
