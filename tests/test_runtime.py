"""The process settings: the allocator (on by default on Linux/glibc, off with
HYDRAPLUS_ALLOCATOR=default, and freed training-sized buffers are then reused instead of mapped
again) and subnormal floats flushed to zero (in every thread when set first, restored after)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hydraplus.cli import main
from hydraplus.runtime import denormals_flushed, flushing_denormals

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


DENORMALS_SCRIPT = """
import numpy as np, torch
from hydraplus.runtime import denormals_flushed, flushing_denormals
x = torch.from_numpy(np.full(1 << 22, 1e-39, dtype=np.float32))  # subnormals, no torch thread started
with flushing_denormals() as supported:
    inside = int((x * 1.0).count_nonzero())  # split over the threads: every one must flush
    flagged = denormals_flushed()
print(supported, inside, flagged, denormals_flushed())
"""


def run_denormals(env: dict[str, str]) -> list[str]:
    return subprocess.run([sys.executable, "-c", DENORMALS_SCRIPT], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": "2", **env}).stdout.split()


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush subnormals")
def test_denormals_flushed_in_every_thread_then_restored() -> None:
    supported, inside, flagged, flushed_after = run_denormals({})
    assert supported == "True" and flagged == "True"
    assert inside == "0"  # no thread of the pool kept a subnormal
    assert flushed_after == "False"  # the calling thread restored


def test_denormals_opt_out_keeps_them() -> None:
    supported, inside, flagged, _ = run_denormals({"HYDRAPLUS_DENORMALS": "keep"})
    assert supported == "False" and flagged == "False"
    assert inside == str(1 << 22)


def test_nested_blocks_restore_the_outer_mode() -> None:
    assert not denormals_flushed()
    with flushing_denormals():
        with flushing_denormals():
            assert denormals_flushed()
        assert denormals_flushed()  # the outer block still flushes
    assert not denormals_flushed()


def test_cli_leaves_the_mode_as_it_found_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs"]) == 0
    assert "cpu-fashion-mnist" in capsys.readouterr().out
    assert not denormals_flushed()
