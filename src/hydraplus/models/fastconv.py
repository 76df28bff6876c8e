"""A small, fast convolutional network for 32 x 32 images, after the published airbench facts.

Plain (no residual connections): a 3x3 convolution stem, then blocks of two 3x3 convolutions,
each block ``conv -> max-pool 2 -> BatchNorm -> activation -> conv -> BatchNorm -> activation``
(widths 64, 256, 256 by default, so a 32 x 32 image leaves the blocks at 4 x 4), a global max
pool and a linear classifier, optionally with scaled logits. ``core`` is the stem and the first
blocks, ``head`` the remaining blocks with the pooling and the classifier, so that
``nn.Sequential(*core, *head)`` is a member-shaped network.

Every part is an ``nn.Sequential`` of standard layers (blocks are nested ``nn.Sequential``), so
members and heads stack into grouped convolutions through `hydraplus.core.batched.stack`; the one
extra layer, `Scale`, registers its stacked form below. The last layer is always the classifier's
``nn.Linear``, which the Drop and Gauss baselines split off.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

from hydraplus.core.batched import NotStackableError, register_stacker
from hydraplus.models.registry import register_architecture

ACTIVATIONS = ("gelu", "relu")
WIDTHS = (64, 256, 256)


class Scale(nn.Module):
    """Multiplies its input by a fixed ``factor`` (no parameters)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


def _stack_scales(modules: Sequence[nn.Module]) -> nn.Module:
    """G equal scalings are one scaling of the grouped tensor (elementwise)."""
    factors = {m.factor for m in modules if isinstance(m, Scale)}
    if len(factors) != 1:
        raise NotStackableError(f"Scale modules differ in factor: {sorted(factors)}")
    return Scale(factors.pop())


register_stacker(Scale, _stack_scales)


def _activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _checked_widths(widths: Sequence[int]) -> list[int]:
    out = list(widths)
    if not out or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in out):
        raise ValueError(f"widths must be one or more positive integers (one per block), got {out}")
    return out


def _check_count(name: str, value: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValueError(f"{name} must be an integer in [0, {most}] (the number of widths), got {value!r}")
    return value


def _stem(in_channels: int, width: int, activation: str) -> list[nn.Module]:
    if in_channels < 1 or width < 1:
        raise ValueError(f"in_channels and stem_width must be >= 1, got {in_channels} and {width}")
    return [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            _activation(activation)]


def conv_block(in_channels: int, out_channels: int, activation: str = "gelu") -> nn.Sequential:
    """conv3x3 -> max-pool 2 -> BatchNorm -> activation -> conv3x3 -> BatchNorm -> activation.

    The convolutions have no bias (each is followed by a BatchNorm); the block halves the height
    and width."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        _activation(activation),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        _activation(activation),
    )


def _blocks(in_channels: int, widths: Sequence[int], activation: str) -> list[nn.Module]:
    channels = [in_channels, *widths]
    return [conv_block(a, b, activation) for a, b in itertools.pairwise(channels)]


def _classifier(in_features: int, num_classes: int, logit_scale: float, bias: bool) -> list[nn.Module]:
    """Global max pool, flatten, [scale], linear. The scale multiplies the linear layer's input, so the
    logits are ``logit_scale * W z + b``: exactly scaled logits with ``bias=False``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not logit_scale > 0:
        raise ValueError(f"logit_scale must be > 0, got {logit_scale!r}")
    layers: list[nn.Module] = [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    if logit_scale != 1.0:
        layers.append(Scale(logit_scale))
    return [*layers, nn.Linear(in_features, num_classes, bias=bias)]


def fastconv_member(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = WIDTHS,
    stem_width: int = 32,
    activation: str = "gelu",
    logit_scale: float = 1.0,
    bias: bool = True,
) -> nn.Sequential:
    """Member: stem (conv3x3 ``stem_width``), one `conv_block` per width, global max pool, linear."""
    widths = _checked_widths(widths)
    return nn.Sequential(
        *_stem(in_channels, stem_width, activation),
        *_blocks(stem_width, widths, activation),
        *_classifier(widths[-1], num_classes, logit_scale, bias),
    )


def fastconv_core(
    in_channels: int = 3,
    widths: Sequence[int] = WIDTHS,
    blocks: int = 2,
    stem_width: int = 32,
    activation: str = "gelu",
) -> nn.Sequential:
    """Student core: the stem and the first ``blocks`` blocks of ``widths`` (default: the first two,
    64 and 256 channels, which leave a 32 x 32 image at 8 x 8)."""
    widths = _checked_widths(widths)
    _check_count("core blocks", blocks, len(widths))
    return nn.Sequential(*_stem(in_channels, stem_width, activation),
                         *_blocks(stem_width, widths[:blocks], activation))


def fastconv_head(
    num_classes: int = 10,
    widths: Sequence[int] = WIDTHS,
    blocks: int = 1,
    stem_width: int = 32,
    activation: str = "gelu",
    logit_scale: float = 1.0,
    bias: bool = True,
) -> nn.Sequential:
    """Student head: the last ``blocks`` blocks of ``widths`` (default: the last one), global max
    pool and linear. It takes the output of a core with the same ``widths`` and
    ``len(widths) - blocks`` blocks (``stem_width`` matters only when the head holds every block)."""
    widths = _checked_widths(widths)
    _check_count("head blocks", blocks, len(widths))
    channels = [stem_width, *widths]
    first = len(widths) - blocks
    return nn.Sequential(*_blocks(channels[first], widths[first:], activation),
                         *_classifier(widths[-1], num_classes, logit_scale, bias))


register_architecture("fastconv", member=fastconv_member, core=fastconv_core, head=fastconv_head)
