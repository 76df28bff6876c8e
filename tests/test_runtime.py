"""The allocator setting: on by default on Linux/glibc, off with HYDRAPLUS_ALLOCATOR=default, and
freed training-sized buffers are then reused instead of mapped again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from hydraplus.runtime import keep_allocator_memory
applied = keep_allocator_memory()
for _ in range(10):  # warm-up: the heap grows to its working size
    x = torch.ones(16 * 1024 * 1024)  # 64 MiB, freed at the end of each iteration
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    x = torch.ones(16 * 1024 * 1024)
    del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(env: dict[str, str]) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env}).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_kept_memory_is_reused_and_the_opt_out_works() -> None:
    kept, kept_faults = run({})
    default, default_faults = run({"HYDRAPLUS_ALLOCATOR": "default"})
    assert kept and not default
    pages = 20 * 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
    assert default_faults > 0.9 * pages  # every buffer mapped and faulted in again
    assert kept_faults < 0.01 * pages  # the warmed-up heap is reused
