"""The diversity-step benchmark compares like with like and leaves the library as it found it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import diversity_step

import hydraplus.methods.hydra as hydra_method
from hydraplus.core.losses import diversity_loss


def test_the_cosine_form_equals_the_library_loss() -> None:
    g = torch.Generator().manual_seed(0)
    rows = [torch.randn(5, 4, 11, generator=g, dtype=torch.float64) for _ in range(2)]
    reference, library = diversity_step.cosine_diversity(rows), diversity_loss(rows)
    torch.testing.assert_close(reference, library, rtol=1e-12, atol=0)


def test_a_short_run_times_every_path_and_restores_the_loss(tmp_path: Path) -> None:
    ms = diversity_step.main(["cpu-fashion-mnist", "--batch", "8", "--repeats", "1", "--warmup", "0",
                              "--out", str(tmp_path)])
    assert set(ms) == set(diversity_step.PATHS) and all(value > 0 for value in ms.values())
    record = json.loads((tmp_path / "diversity_step-cpu-fashion-mnist.json").read_text())
    assert record["preset"] == "cpu-fashion-mnist" and record["ms_per_step"] == ms
    assert hydra_method.diversity_loss is diversity_loss
