"""ResNet members, cores and heads for CIFAR-sized images (docs/method.md#architectures-and-hyperparameters).

Its basic block registers a stacked form, so members and heads of ResNet blocks run as grouped
convolutions when batched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hydraplus.core.batched import (
    BatchedBatchNorm,
    BatchedConv2d,
    is_grouped,
    register_stacker,
    stack,
)
from hydraplus.models.registry import register_architecture


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a (projected when needed) identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu_(out + self.shortcut(x))


class BatchedBasicBlock(nn.Module):
    """G ResNet basic blocks run as grouped convolutions."""

    def __init__(self, blocks: Sequence[BasicBlock]):
        super().__init__()
        self.groups = len(blocks)
        self.conv1 = BatchedConv2d.from_modules([b.conv1 for b in blocks])
        self.bn1 = BatchedBatchNorm([b.bn1 for b in blocks])
        self.conv2 = BatchedConv2d.from_modules([b.conv2 for b in blocks])
        self.bn2 = BatchedBatchNorm([b.bn2 for b in blocks])
        self.shortcut = stack([b.shortcut for b in blocks])

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        short = self.shortcut(x)
        if not is_grouped(short, 3):
            short = short.unsqueeze(1)
        return F.relu(out + short, inplace=True)


register_stacker(BasicBlock, BatchedBasicBlock)


def _stage(in_channels: int, out_channels: int, stride: int, blocks: int) -> list[nn.Module]:
    layers: list[nn.Module] = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return layers


def _stem(in_channels: int, width: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]


def _stages(in_width: int, widths: Sequence[int], strides: Sequence[int], blocks: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    prev = in_width
    for width, stride in zip(widths, strides, strict=True):
        layers += _stage(prev, width, stride, blocks)
        prev = width
    return layers


def resnet_member(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128, 256),
    strides: Sequence[int] = (1, 2, 2, 2),
    blocks: int = 2,
) -> nn.Sequential:
    """Member: stem, 4 stages x 2 basic blocks, global average pooling, linear."""
    return nn.Sequential(
        *_stem(in_channels, widths[0]),
        *_stages(widths[0], widths, strides, blocks),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes),
    )


def resnet_core(
    in_channels: int = 3,
    widths: Sequence[int] = (96, 192, 256),
    strides: Sequence[int] = (1, 2, 2),
    blocks: int = 2,
) -> nn.Sequential:
    """Student core: stem and the first three stages (widths 96/192/256)."""
    return nn.Sequential(*_stem(in_channels, widths[0]), *_stages(widths[0], widths, strides, blocks))


def resnet_head(
    in_channels: int = 256, width: int = 128, num_classes: int = 10, stride: int = 2, blocks: int = 2
) -> nn.Sequential:
    """Student head: the fourth stage (width 128, stride 2), pooling, linear."""
    return nn.Sequential(
        *_stage(in_channels, width, stride, blocks),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )


register_architecture("resnet", member=resnet_member, core=resnet_core, head=resnet_head)
