"""Fully connected members, cores and heads for the toy problems."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from hydraplus.models.registry import register_architecture


def mlp(sizes: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (and after the last if asked)."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"mlp sizes must be >= 2 positive integers, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def mlp_member(in_features: int, hidden: int, depth: int, out_features: int) -> nn.Sequential:
    """A member network: ``depth`` hidden layers of width ``hidden``."""
    return mlp([in_features, *[hidden] * depth, out_features])


def mlp_core(in_features: int, hidden: int, depth: int) -> nn.Sequential:
    """A student core: ``depth`` linear layers, activated output (features for the heads)."""
    return mlp([in_features, *[hidden] * depth], final_activation=True)


def mlp_head(hidden: int, depth: int, out_features: int) -> nn.Sequential:
    """A student head: ``depth`` linear layers from the core's features to the outputs."""
    return mlp([*[hidden] * depth, out_features])


register_architecture("mlp", member=lambda sizes: mlp(sizes),
                      core=lambda sizes: mlp(sizes, final_activation=True), head=lambda sizes: mlp(sizes))
