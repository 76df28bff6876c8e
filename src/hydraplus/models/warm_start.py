"""Start a student's core from a trained member's weights instead of a fresh initialisation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def init_core_from_member(core: nn.Module, member_state: Mapping[str, Tensor]) -> None:
    """Copy the member's leading tensors, in order, into ``core``'s weights and buffers.

    The core must be the member's first layers (the built-in architectures' cores and heads are cut
    that way); ``member_state`` is one member's state (`Ensemble.member_state_dict`), whose stacked
    tensors may carry a leading dimension of 1. Scalar buffers (step counters) are skipped.
    """
    sources = [(name, value) for name, value in member_state.items() if value.dim() > 0]
    targets = [(name, value) for name, value in core.state_dict().items() if value.dim() > 0]
    if len(targets) > len(sources):
        raise ValueError(f"core_init='member': the core has {len(targets)} tensors, the member only "
                         f"{len(sources)}")
    for (name, target), (source_name, source) in zip(targets, sources, strict=False):
        if source.dim() == target.dim() + 1 and source.shape[0] == 1:
            source = source[0]
        if source.shape != target.shape:
            raise ValueError(f"core_init='member': core tensor {name} {tuple(target.shape)} does not match "
                             f"the member's {source_name} {tuple(source.shape)}; the core must be the "
                             "member's first layers")
        with torch.no_grad():
            target.copy_(source)
