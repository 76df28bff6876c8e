"""`export_model`: a student as a torch.export program that reproduces it (trained runs through
`hydraplus export`: tests/integration/test_export_run.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from hydraplus.core.containers import MultiHeadStudent
from hydraplus.export.pt2 import export_model
from hydraplus.models import lenet_core, lenet_head


def test_convolutional_students_with_stacked_heads_export(tmp_path: Path) -> None:
    student = MultiHeadStudent(lenet_core(widths=(4, 2)), [lenet_head(32, 8, 3) for _ in range(4)],
                               batched=True)
    export_model(student, torch.randn(2, 3, 16, 16), tmp_path / "s.pt2")
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(tmp_path / "s.pt2").module()(x), student(x),
                                   rtol=0, atol=1e-5)
