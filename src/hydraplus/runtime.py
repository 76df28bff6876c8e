"""Process-wide settings for speed: glibc's allocator told to keep the memory it gets.

By default glibc hands large blocks (training activations, gradients) back to the system
when they are freed and maps them again on the next step: millions of page faults and much
system time per run on a CPU. `keep_allocator_memory` raises the mmap and trim thresholds and
the top pad (the same as the ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_`` environment variables), so freed blocks are reused. The price is a process
that keeps its peak memory until it exits. Set ``HYDRAPLUS_ALLOCATOR=default`` to opt out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "HYDRAPLUS_ALLOCATOR"
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
