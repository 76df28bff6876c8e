"""Process-wide settings for speed: glibc's allocator told to keep the memory it gets, and
subnormal floats flushed to zero.

By default glibc hands large blocks (training activations, gradients) back to the system
when they are freed and maps them again on the next step: millions of page faults and much
system time per run on a CPU. `keep_allocator_memory` raises the mmap and trim thresholds and
the top pad (the same as the ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_`` environment variables), so freed blocks are reused. The price is a process
that keeps its peak memory until it exits. Set ``HYDRAPLUS_ALLOCATOR=default`` to opt out.

Weights that weight decay shrinks towards zero (those of inputs a ReLU never lets through) end up
subnormal (below 1.2e-38 in float32), and an x86 CPU multiplies subnormals in microcode: a trained
LeNet member's 1568-64 layer ran 20x slower on a batch than with those weights zeroed.
`flushing_denormals` sets the CPU's flush-to-zero and denormals-are-zero modes for a block of
work and restores the calling thread's previous mode afterwards. Threads inherit the mode when
they are started, so it reaches PyTorch's thread pool only if it is set before the first parallel
operation (as the CLI does; the pool's threads then keep it); later it speeds up the calling
thread alone. A subnormal is below any probability or weight a model can use, so results are the
same up to float rounding. Set ``HYDRAPLUS_DENORMALS=keep`` to opt out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV = "HYDRAPLUS_ALLOCATOR"
DENORMALS_ENV = "HYDRAPLUS_DENORMALS"
_SUBNORMAL = 1e-39  # a float32 subnormal: read as 0 where they are flushed
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, (1 << 31) - 1), (_M_TOP_PAD, 1 << 30))


def keep_allocator_memory() -> bool:
    """Tell glibc's malloc to keep freed memory; False where it does not apply (opt-out, not
    Linux, not glibc) or was refused."""
    if os.environ.get(ENV, "").strip().lower() == "default" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)


def denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormal floats to zero."""
    return torch.tensor(_SUBNORMAL, dtype=torch.float32).item() == 0.0


@contextmanager
def flushing_denormals() -> Iterator[bool]:
    """Flush subnormal floats to zero inside the block (yields whether the CPU supports it; False
    with ``HYDRAPLUS_DENORMALS=keep``), then restore the calling thread's previous mode. Usable as
    a decorator."""
    if os.environ.get(DENORMALS_ENV, "").strip().lower() == "keep":
        yield False
        return
    before = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(before)
