"""Run G copies of one architecture (ensemble members or student heads) as one computation.

`stack(modules)` turns G modules of the same architecture into one module whose
parameters are stacked along a leading group dimension G, so that every member/head
runs in a single batched matmul or grouped convolution instead of a Python loop.

Layout: a *shared* input has the plain shape ``[B, *features]`` (every copy sees it,
nothing is materialised G times); a *grouped* input or output has shape
``[B, G, *features]``. Every parameter of a stacked module has G as its leading
factor, so ``p.reshape(G, -1)`` is always the per-copy slice (used for per-member
gradient clipping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NotStackableError(TypeError):
    """Raised when modules cannot be stacked; callers fall back to a Python loop."""


def is_grouped(x: Tensor, feature_dims: int) -> bool:
    return x.dim() == feature_dims + 2


class BatchedLinear(nn.Module):
    """G independent linear layers; weight ``[G, out, in]``, bias ``[G, out]``."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_modules(cls, layers: Sequence[nn.Linear]) -> BatchedLinear:
        first = layers[0]
        out = cls(len(layers), first.in_features, first.out_features, first.bias is not None)
        with torch.no_grad():
            out.weight.copy_(torch.stack([m.weight for m in layers]))
            if out.bias is not None:
                out.bias.copy_(torch.stack([m.bias for m in layers]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        g, o = self.groups, self.out_features
        if not is_grouped(x, 1):
            y = (x @ self.weight.reshape(g * o, -1).T).view(x.shape[0], g, o)
            return y if self.bias is None else y + self.bias
        y = torch.bmm(x.transpose(0, 1), self.weight.transpose(1, 2))
        if self.bias is not None:
            y = y + self.bias.unsqueeze(1)
        return y.transpose(0, 1)

    def weight_rows(self) -> Tensor:
        """Per-copy rows (one per output unit, bias appended): ``[G, out, in(+1)]``."""
        if self.bias is None:
            return self.weight
        return torch.cat([self.weight, self.bias.unsqueeze(-1)], dim=-1)


class BatchedConv2d(nn.Module):
    """G independent 2-D convolutions as one grouped convolution."""

    def __init__(self, groups: int, conv: nn.Conv2d):
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise NotStackableError("only zero-padded, ungrouped Conv2d with int padding stacks")
        self.groups = groups
        self.out_channels = conv.out_channels
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.weight = nn.Parameter(torch.empty(groups * conv.out_channels, *conv.weight.shape[1:]))
        self.bias = (
            nn.Parameter(torch.empty(groups * conv.out_channels)) if conv.bias is not None else None
        )

    @classmethod
    def from_modules(cls, layers: Sequence[nn.Conv2d]) -> BatchedConv2d:
        out = cls(len(layers), layers[0])
        with torch.no_grad():
            out.weight.copy_(torch.cat([m.weight for m in layers]))
            if out.bias is not None:
                out.bias.copy_(torch.cat([m.bias for m in layers]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        if is_grouped(x, 3):
            b, g, c, h, w = x.shape
            merged = x.reshape(b, g * c, h, w)
            if self.weight.is_contiguous(memory_format=torch.channels_last):
                merged = merged.contiguous(memory_format=torch.channels_last)
            y = F.conv2d(
                merged, self.weight, self.bias,
                self.stride, self.padding, self.dilation, self.groups,
            )
        else:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return y.view(y.shape[0], self.groups, self.out_channels, *y.shape[2:])

    def weight_rows(self) -> Tensor:
        """Per-copy rows (one per output filter, flattened, bias appended)."""
        rows = self.weight.reshape(self.groups, self.out_channels, -1)  # any memory format
        if self.bias is None:
            return rows
        return torch.cat([rows, self.bias.view(self.groups, self.out_channels, 1)], dim=-1)


class BatchedBatchNorm(nn.Module):
    """G independent batch norms: one BatchNorm over G*C channels is exactly that."""

    def __init__(self, layers: Sequence[nn.modules.batchnorm._BatchNorm]):
        super().__init__()
        first = layers[0]
        self.groups, self.num_features = len(layers), first.num_features
        cls = nn.BatchNorm2d if isinstance(first, nn.BatchNorm2d) else nn.BatchNorm1d
        self.norm = cls(
            self.groups * first.num_features, first.eps, first.momentum,
            first.affine, first.track_running_stats,
        )
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(first, name) is not None:
                    getattr(self.norm, name).copy_(torch.cat([getattr(m, name) for m in layers]))

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        if x.dim() == 2 or x.dim() == 4:
            x = x.unsqueeze(1).expand(b, self.groups, *x.shape[1:])
        y = self.norm(x.reshape(b, self.groups * self.num_features, *x.shape[3:]))
        return y.view(b, self.groups, self.num_features, *x.shape[3:])


class GroupedSpatial(nn.Module):
    """Applies a 4-D spatial op (pooling) to grouped ``[B, G, C, H, W]`` tensors."""

    def __init__(self, op: nn.Module):
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        if not is_grouped(x, 3):
            return self.op(x)
        b, g, c, h, w = x.shape
        y = self.op(x.reshape(b, g * c, h, w))
        return y.view(b, g, c, *y.shape[2:])


class GroupedFlatten(nn.Module):
    """Flattens every dimension after the group dimension."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2)


class BatchedSequential(nn.Sequential):
    """A Sequential of stacked layers (kept as a distinct type for clarity in repr)."""


_ELEMENTWISE = (
    nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.SiLU, nn.ELU, nn.Identity, nn.Dropout,
)
_SPATIAL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


_STACKERS: dict[type, Callable[[Sequence[nn.Module]], nn.Module]] = {}


def register_stacker(kind: type, stacker: Callable[[Sequence[nn.Module]], nn.Module]) -> None:
    """Teach `stack` a module type of an architecture: ``stacker(modules)`` returns the batched
    module for G modules of ``kind`` (their weights copied). Architectures register their own
    blocks, so this core knows no concrete architecture."""
    _STACKERS[kind] = stacker


def stack(modules: Sequence[nn.Module]) -> nn.Module:
    """Stack G modules of one architecture into one batched module (weights copied).

    Raises `NotStackableError` for layers without a batched form; callers then loop.
    """
    if not modules:
        raise ValueError("stack() needs at least one module")
    first = modules[0]
    if any(type(m) is not type(first) for m in modules):
        raise NotStackableError("modules differ in type: " + ", ".join(type(m).__name__ for m in modules))
    if type(first) in (nn.Sequential, BatchedSequential):
        lengths = {len(m) for m in modules}
        if len(lengths) != 1:
            raise NotStackableError(f"Sequential modules differ in length: {sorted(lengths)}")
        return BatchedSequential(*[stack(layer) for layer in zip(*modules, strict=True)])
    if isinstance(first, nn.Linear):
        return BatchedLinear.from_modules(modules)
    if isinstance(first, nn.Conv2d):
        return BatchedConv2d.from_modules(modules)
    if isinstance(first, nn.BatchNorm1d | nn.BatchNorm2d):
        return BatchedBatchNorm(modules)
    for kind, stacker in _STACKERS.items():
        if isinstance(first, kind):
            return stacker(modules)
    if isinstance(first, nn.Flatten):
        if first.start_dim != 1 or first.end_dim != -1:
            raise NotStackableError("only Flatten(start_dim=1, end_dim=-1) stacks")
        return GroupedFlatten()
    if isinstance(first, _SPATIAL):
        return GroupedSpatial(first)
    if isinstance(first, _ELEMENTWISE):
        return first
    raise NotStackableError(f"no batched form for {type(first).__name__}")


def weight_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of a stacked module that carry per-copy weight rows, in order."""
    return [m for m in module.modules() if isinstance(m, BatchedLinear | BatchedConv2d)]


def per_copy_sq_norms(params: Sequence[Tensor], groups: int) -> Tensor:
    """Squared L2 norm of each copy's slice, summed over the given stacked tensors: ``[G]``."""
    total = torch.zeros(groups, device=params[0].device if params else None)
    for p in params:
        total = total + p.detach().reshape(groups, -1).float().pow(2).sum(1)
    return total
