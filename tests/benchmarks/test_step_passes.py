"""The pass-saving benchmark times like with like and leaves the library and torch as it found them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.utils.deterministic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import step_passes

import hydraplus.methods.base as method_base
from hydraplus.core.losses import l2_penalty


def test_the_before_penalty_is_the_library_penalty_in_value() -> None:
    params = [torch.randn(4, 3), torch.randn(5)]
    torch.testing.assert_close(step_passes.pow_l2_penalty(params), l2_penalty(params), rtol=1e-6, atol=0)


def test_a_short_run_times_both_paths_and_restores_the_library(tmp_path: Path) -> None:
    try:
        ms = step_passes.main(["cpu-cifar10", "--batch", "8", "--repeats", "1", "--warmup", "0",
                               "--allocator", "default", "--out", str(tmp_path)])
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True
    assert ms["before"] > 0 and ms["after"] > 0 and ms["speedup"] == ms["before"] / ms["after"]
    record = json.loads((tmp_path / "step_passes-cpu-cifar10.json").read_text())
    assert record["ms_per_step"] == {"before": ms["before"], "after": ms["after"]}
    assert record["allocator_kept"] is False
    assert method_base.l2_penalty is l2_penalty
