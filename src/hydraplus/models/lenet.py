"""LeNet-style members, cores and heads (docs/method.md#architectures-and-hyperparameters)."""

from __future__ import annotations

from torch import Tensor, nn

from hydraplus.models.mlp import mlp
from hydraplus.models.registry import register_architecture


class PoolTo(nn.AdaptiveAvgPool2d):
    """Adaptive average pooling to ``size`` x ``size`` that passes a map already that size through
    (``pooled=7`` on 28 x 28 images, ``pooled=8`` on 32 x 32): the same values and gradients, without
    the pooling kernel, which cost 4-11% of a LeNet member's training step on a CPU."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return super().forward(x)


def lenet_features(in_channels: int, widths: tuple[int, int], pooled: int = 4) -> nn.Sequential:
    """conv3x3, maxpool, ReLU, conv3x3, maxpool, ReLU, adaptive avgpool to ``pooled`` x ``pooled``.

    Max-pooling before the ReLU gives the same values and gradients as after it (the two
    commute) with the ReLU on a quarter of the elements: about 5% less time per distillation step
    of the SVHN-LeNet setting in bf16 + channels-last.
    """
    c1, c2 = widths
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(inplace=True),
        PoolTo(pooled), nn.Flatten(),
    )


def lenet_member(
    num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int] = (32, 64), hidden: int = 128,
    pooled: int = 4,
) -> nn.Sequential:
    """Member: conv 32, conv 64, avgpool to 4x4, MLP 1024-128-10 (paper's SVHN member).

    ``pooled=7`` keeps a 28 x 28 input's full 7 x 7 feature map (no averaging), which small
    members on Fashion-MNIST need: 8.6% instead of 11.5% validation error for conv 16/32;
    ``pooled=8`` does the same for 32 x 32 images (CIFAR-10 conv 16/32: 32.4% instead of 36.9%).
    """
    return nn.Sequential(
        *lenet_features(in_channels, widths, pooled),
        *mlp([widths[1] * pooled * pooled, hidden, num_classes]),
    )


def lenet_core(in_channels: int = 3, widths: tuple[int, int] = (128, 32), pooled: int = 4) -> nn.Sequential:
    """Student core: conv 128, conv 32, same pattern; outputs ``widths[1] * pooled**2`` features."""
    return lenet_features(in_channels, widths, pooled)


def lenet_head(in_features: int = 512, hidden: int = 128, num_classes: int = 10) -> nn.Sequential:
    """Student head: MLP 512-128-128-10."""
    return mlp([in_features, hidden, hidden, num_classes])


register_architecture("lenet", member=lenet_member, core=lenet_core, head=lenet_head)
