"""``hydraplus distil`` with model-zoo members saved as .pt2 programs: the student cut from their
graph (``--split``), or given as a Python factory (``--student``)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from hydraplus.cli import main
from hydraplus.evaluation.held_out import teacher_student_view

CLASSES = 10
FACTORIES = '''
from torch import nn


def student(heads, outputs):
    core = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return core, lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, outputs))


def wrong_width(heads, outputs):
    return student(heads, outputs + 1)


def not_a_student(heads, outputs):
    return "resnet"
'''


def densenet() -> torch.nn.Module:
    """torchvision's DenseNet class, small (its forward is not its children in order)."""
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                       num_classes=CLASSES).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.npz (24 train and 8 test 32 x 32 RGB images), two DenseNet members as a.pt2 and b.pt2
    (dynamic batch size) and students.py (student factories)."""
    folder = tmp_path_factory.mktemp("zoo-cli")
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", x_train=rng.integers(0, 256, (24, 32, 32, 3), np.uint8),
             y_train=rng.integers(0, CLASSES, 24), x_test=rng.integers(0, 256, (8, 32, 32, 3), np.uint8),
             y_test=rng.integers(0, CLASSES, 8))
    batch = torch.export.Dim("batch", min=1, max=4096)
    x = torch.rand(2, 3, 32, 32)
    for name in "ab":
        program = torch.export.export(densenet(), (x,), dynamic_shapes=({0: batch},))
        torch.export.save(program, folder / f"{name}.pt2")
    (folder / "students.py").write_text(FACTORIES)
    return folder


def distil(files: Path, out: Path, *extra: str) -> int:
    return main(["distil", "--teacher", str(files / "a.pt2"), str(files / "b.pt2"), "--data",
                 str(files / "data.npz"), "--epochs", "1", "--lam", "0.05", "--latency-batches", "1",
                 "--out", str(out), "--quiet", *extra])


def head_weights(out: Path) -> dict[str, list[int]]:
    state = torch.load(out / "hydra+-2" / "model.pt", weights_only=True)
    return {key: list(value.shape) for key, value in state.items() if key.startswith("heads.")}


def test_program_members_are_cut_from_their_graph_by_default_and_at_split(files: Path,
                                                                          tmp_path: Path) -> None:
    assert distil(files, tmp_path / "auto") == 0
    heads = head_weights(tmp_path / "auto")  # the classifier: one Linear per head, batched
    assert heads == {"heads.stacked.0.weight": [2, CLASSES, 32], "heads.stacked.0.bias": [2, CLASSES]}
    metrics = teacher_student_view(json.loads((tmp_path / "auto" / "evaluation.json").read_text()))
    assert metrics["models"]["student"]["name"] == "hydra+-2" and metrics["test_size"] == 8

    assert distil(files, tmp_path / "split", "--split", "features.transition1") == 0
    heads = head_weights(tmp_path / "split")  # from the transition on: it, the second block, the classifier
    convolutions = [key for key, shape in heads.items() if len(shape) == 4]
    assert len(convolutions) == 2 * 5  # per head: the transition's and the block's two layers' two each
    assert heads["heads.looped.0.0.features.transition1.conv.weight"] == [16, 32, 1, 1]
    assert heads["heads.looped.1.1.weight"] == [CLASSES, 32]  # each head ends with the classifier


def test_a_student_factory_from_a_file_or_a_module(files: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert distil(files, tmp_path / "file", "--student", f"{files / 'students.py'}:student") == 0
    heads = head_weights(tmp_path / "file")
    assert heads["heads.stacked.2.weight"] == [2, CLASSES, 16]
    record = teacher_student_view(json.loads((tmp_path / "file" / "evaluation.json").read_text()))["record"]
    assert record["student factory"] == f"{files / 'students.py'}:student"

    monkeypatch.chdir(files)  # an importable module name, from the working directory
    assert distil(files, tmp_path / "module", "--student", "students:student") == 0
    assert "students" in sys.modules
    monkeypatch.delitem(sys.modules, "students")


@pytest.mark.parametrize(("extra", "message"), [
    (["--split", "features.transiton1"], r"split 'features.transiton1' names no module of the first member; "
                                         r"the closest module paths are \['features.transition1'"),
    (["--student", "students.py:wrong_width"], r"the student gives outputs of shape \[2, 2, 11\] on inputs "
                                               r"of shape \[2, 3, 32, 32\]; it must give \[B, M, D\] = "
                                               r"\[2, 2, 10\]"),
    (["--student", "students.py:not_a_student"], r"the student factory not_a_student returned str; it must "
                                                 r"return an nn.Module returning \[B, M, D\], or a \(core, "
                                                 r"head_factory\) pair"),
    (["--student", "students.py:missing"], r"--student students.py:missing: students.py has no callable "
                                           r"'missing'"),
    (["--student", "students"], r"--student must be MODULE:FACTORY"),
])
def test_bad_splits_and_factories_are_one_clear_line(files: Path, tmp_path: Path, extra: list[str],
                                                     message: str, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(files)
    assert distil(files, tmp_path / "out", *extra) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err



class AuxNet(nn.Module):
    """A classifier beside an auxiliary head, both returned in a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.aux, self.fc = nn.Linear(8, 2), nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(x)
        return {"aux": self.aux(features), "logits": self.fc(features)}


def test_program_members_returning_a_dict_are_cut_at_the_part_output_names(files: Path,
                                                                           tmp_path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    teachers = []
    for i in range(2):
        torch.manual_seed(i)
        program = torch.export.export(AuxNet().eval(), (torch.rand(2, 3, 32, 32),),
                                      dynamic_shapes=({0: batch},))
        torch.export.save(program, tmp_path / f"{i}.pt2")
        teachers.append(str(tmp_path / f"{i}.pt2"))
    out = tmp_path / "out"
    assert main(["distil", "--teacher", *teachers, "--data", str(files / "data.npz"), "--epochs", "1",
                 "--lam", "0.05", "--latency-batches", "1", "--output", "logits", "--out", str(out),
                 "--quiet"]) == 0
    assert head_weights(out) == {"heads.stacked.0.weight": [2, CLASSES, 8],
                                 "heads.stacked.0.bias": [2, CLASSES]}  # fresh copies of fc
    state = torch.load(out / "hydra+-2" / "model.pt", weights_only=True)
    assert not any("aux" in key for key in state)  # the auxiliary head is left out
