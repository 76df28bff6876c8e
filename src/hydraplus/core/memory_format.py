"""Channels-last (NHWC) memory format for convolutional models.

On CPUs with oneDNN (and on GPUs with tensor cores) convolutions run faster on NHWC data.
`use_channels_last` stores every 4-D weight NHWC and makes each convolution take its input
NHWC (a no-op when it already is), so members, cores and heads, stacked or looped, all run
in that layout; outputs and losses are unchanged up to floating-point rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hydraplus.core.batched import BatchedConv2d


def _nhwc_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0]
    if isinstance(x, Tensor) and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last):
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d | BatchedConv2d) for m in model.modules())


def use_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with NHWC weights and inputs for every convolution (in place; returned)."""
    model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | BatchedConv2d) and not getattr(module, "_hydraplus_nhwc", False):
            module.register_forward_pre_hook(_nhwc_input)
            module._hydraplus_nhwc = True
    return model
