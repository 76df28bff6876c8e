"""scripts/metric_moves.py: a dump of outputs scored by the code under a given src/, and a clear
error for a folder that holds no hydraplus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import metric_moves as moves

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_dump_is_scored_by_the_given_code(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    test, ood = torch.randn(40, 3, 4, generator=generator), torch.randn(20, 3, 4, generator=generator)
    y = torch.randint(0, 4, (40,), generator=generator)
    torch.save({"outputs": {"m": (test, ood)}, "y": y}, tmp_path / "dump.pt")
    scores = moves.score(SRC, tmp_path / "dump.pt")["m"]
    error = (test.softmax(-1).mean(1).argmax(-1) != y).float().mean()
    assert scores["error"] == pytest.approx(float(error))
    assert {"ece", "nll", "msp_auroc", "epistemic_auroc"} <= set(scores)


def test_an_old_src_without_hydraplus_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, moves.__file__, str(tmp_path), "--old-src", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert f"--old-src {tmp_path}: no hydraplus package there" in done.stderr
