"""Numerical precision: mixed-precision forward passes, losses always in float32.

``"32"`` runs everything in float32. ``"bf16-mixed"`` (CPU or CUDA) and ``"16-mixed"`` (CUDA
only) run the networks' matrix products and convolutions in 16 bits under autocast while the
weights, the optimiser and every loss, the diversity term and every metric stay float32.
A CPU without native bfloat16 (AVX512-BF16 or AMX) emulates it, slower than float32: asking
for ``"bf16-mixed"`` there warns once (`PrecisionWarning`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import torch

from hydraplus.choices import PRECISIONS

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class PrecisionWarning(UserWarning):
    """A precision that works but costs more than it saves on this machine."""


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); True where PyTorch
    cannot say."""
    avx512 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if avx512 is None or amx is None:
        return True
    return bool(avx512() or amx())


@functools.cache
def _warn_emulated_bf16() -> None:
    warnings.warn("this CPU has no native bfloat16 (AVX512-BF16 or AMX): 'bf16-mixed' is emulated and "
                  "slower than float32 here (a cpu-cifar10 epoch 1.65x slower on an Intel Xeon without it); "
                  "pass --precision 32 (precision=\"32\") to train faster", PrecisionWarning, stacklevel=3)


def check_precision(precision: str, device_type: str = "cpu") -> str:
    """``precision`` if it is known and runs on ``device_type`` (float16 needs CUDA); warns once
    when bfloat16 would be emulated on this CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "16-mixed" and device_type != "cuda":
        raise ValueError("precision '16-mixed' needs a CUDA device; on the CPU use 'bf16-mixed'")
    if precision == "bf16-mixed" and device_type == "cpu" and not native_bf16():
        _warn_emulated_bf16()
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
