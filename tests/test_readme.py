"""The README's examples run as written (its section on the student: torchvision, timm, a factory;
the Python API)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import hydraplus

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under ``heading``, in order."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.DOTALL)


def test_the_students_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks("### The student")
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "resnet-student.onnx").is_file() and (tmp_path / "convnext-student.pt2").is_file()
    x, y = namespace["x"], namespace["y"]
    result = hydraplus.distil(namespace["members"], (x, y), heads=2, epochs=1, batch_size=16,
                              student=namespace["resnet_student"])
    assert result.model.num_heads == 2 and result.predict(x[:3])["probs"].shape == (3, 10)
    assert isinstance(result.model.core[-1], torch.nn.Flatten)


def test_the_python_api_example_runs() -> None:
    (block,) = python_blocks("## Python API")
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    deployed, student, x = namespace["deployed"], namespace["student"], namespace["x"]
    assert namespace["s"] > 0 and deployed(x).shape == student(x).shape == (256, 20, 3)
