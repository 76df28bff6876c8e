"""Numerical precision: mixed-precision forward passes, losses always in float32.

``"32"`` runs everything in float32. ``"bf16-mixed"`` (CPU or CUDA) and ``"16-mixed"`` (CUDA
only) run the networks' matrix products and convolutions in 16 bits under autocast while the
weights, the optimiser and every loss, the diversity term and every metric stay float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from hydraplus.choices import PRECISIONS

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def check_precision(precision: str, device_type: str = "cpu") -> str:
    """``precision`` if it is known and runs on ``device_type`` (float16 needs CUDA)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "16-mixed" and device_type != "cuda":
        raise ValueError("precision '16-mixed' needs a CUDA device; on the CPU use 'bf16-mixed'")
    return precision


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager[object]:
    """The autocast context of ``precision`` on ``device_type`` (nothing for ``"32"``)."""
    check_precision(precision, device_type)
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=_DTYPES[precision])


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Autocast off (CPU and CUDA) inside the block: for losses and metrics on float32 inputs."""
    with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
        yield
